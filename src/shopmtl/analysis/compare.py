"""Who gains, who loses: single-task baselines against multi-task variants (architecture × balancer), trained
with the same data, split, budget and seeds; per task the primary test metric as mean ± std over seeds, its
relative change against single-task, a flag where a task loses significantly, and Δm% per variant.

Δm% (Maninis et al., 2019; Vandenhende et al., 2021) is the mean over tasks of the relative change against the
single-task model, signed so that positive is better whatever the metric's direction (AUC up, RMSE down). It is
computed per seed against the single-task mean and reported as mean ± std over seeds. A task "loses
significantly" when its mean is worse than single-task and Welch's t-test over the seeds gives p < 0.05 (two or
more seeds on each side; with three seeds only large, consistent losses pass)."""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..config import ExperimentConfig
    from ..run import Run

log = logging.getLogger("shopmtl")
ALPHA = 0.05


def relative_gain(value: float, baseline: float, higher_is_better: bool) -> float:
    """Signed relative change in percent: positive means better, whatever the metric's direction."""
    if any(map(math.isnan, (value, baseline))) or baseline == 0:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    return sign * (value - baseline) / abs(baseline) * 100.0


def delta_m(values: dict[str, float], baselines: dict[str, float], higher: dict[str, bool]) -> float:
    """Δm%: the mean over tasks of the direction-corrected relative gain of `values` against `baselines`."""
    gains = [relative_gain(values[t], baselines[t], higher[t]) for t in baselines if t in values]
    gains = [g for g in gains if not math.isnan(g)]
    return sum(gains) / len(gains) if gains else math.nan


def _metric(run: Run, task: str, metric: str, split: str) -> float:
    value = run.metrics.get(split, {}).get(task, {}).get(metric, math.nan)
    return math.nan if value is None else float(value)


def comparison_rows(single: Run, others: dict[str, Run], split: str = "test") -> list[dict[str, Any]]:
    """One row per task: its primary metric for the single-task run and for each other run, with gains in %."""
    rows = []
    for name, task in single.tasks.items():
        metric = task.primary
        base = _metric(single, name, metric, split)
        row: dict[str, Any] = {"task": name, "metric": metric, "single": base}
        for label, run in others.items():
            value = _metric(run, name, metric, split)
            row[label] = value
            row[f"{label}_gain_pct"] = relative_gain(value, base, task.higher_is_better(metric))
        rows.append(row)
    return rows


def mean_gain(rows: list[dict[str, Any]], label: str) -> float:
    """Δm% of one comparison: the mean over tasks of the direction-corrected relative gain against single-task."""
    gains = [r[f"{label}_gain_pct"] for r in rows if not math.isnan(r[f"{label}_gain_pct"])]
    return sum(gains) / len(gains) if gains else math.nan


def format_comparison(rows: list[dict[str, Any]], labels: list[str]) -> str:
    head = f"{'task':<16}{'metric':<12}{'single':>10}" + "".join(f"{lab:>16}{'gain':>9}" for lab in labels)
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['task']:<16}{r['metric']:<12}{r['single']:>10.4f}"
        for lab in labels:
            gain = r[f"{lab}_gain_pct"]
            mark = "" if math.isnan(gain) or gain == 0 else (" ▲" if gain > 0 else " ▼")
            line += f"{r[lab]:>16.4f}{gain:>+7.1f}%{mark}"
        lines.append(line)
    lines.append("-" * len(head))
    lines.append(f"{'Δm% (mean relative gain over tasks)':<38}" + "".join(
        f"{mean_gain(rows, lab):>+24.2f}%" for lab in labels))
    return "\n".join(lines)


# ------------------------------------------------------------------ several seeds, several variants
def spread(values: list[float]) -> dict[str, Any]:
    clean = [v for v in values if not math.isnan(v)]
    return {"mean": statistics.fmean(clean) if clean else math.nan,
            "std": statistics.stdev(clean) if len(clean) > 1 else (0.0 if clean else math.nan),
            "values": values}


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test; NaN with fewer than two values a side or no variance at all."""
    a, b = [v for v in a if not math.isnan(v)], [v for v in b if not math.isnan(v)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of precision loss, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def summarise(values: dict[str, dict[str, list[float]]], metrics: dict[str, str], higher: dict[str, bool],
              alpha: float = ALPHA) -> dict[str, Any]:
    """values[label][task] = per-seed metric (label `single` is the baseline) → table rows and Δm% per variant."""
    labels = [lab for lab in values if lab != "single"]
    single = values["single"]
    base_mean = {t: spread(single[t])["mean"] for t in metrics}
    rows = []
    for task, metric in metrics.items():
        row: dict[str, Any] = {"task": task, "metric": metric, "higher_is_better": higher[task],
                               "single": spread(single[task])}
        for lab in labels:
            cell = spread(values[lab][task])
            cell["gain_pct"] = relative_gain(cell["mean"], base_mean[task], higher[task])
            cell["p_value"] = welch_p(values[lab][task], single[task])
            cell["loses"] = (None if math.isnan(cell["p_value"])
                             else bool(cell["gain_pct"] < 0 and cell["p_value"] < alpha))
            row[lab] = cell
        rows.append(row)
    n_seeds = len(next(iter(single.values())))
    dm = {}
    for lab in labels:
        per_seed = [delta_m({t: values[lab][t][k] for t in metrics}, base_mean, higher) for k in range(n_seeds)]
        dm[lab] = spread(per_seed)
    return {"labels": labels, "rows": rows, "delta_m": dm, "alpha": alpha}


def against_baselines(values: dict[str, dict[str, list[float]]], metrics: dict[str, str],
                      higher: dict[str, bool], baselines: list[str]) -> dict[str, Any]:
    """Per task, the strongest baseline on this split (by its mean) and every model's change against it in %; a
    model is `below` where its mean is worse. Stricter than the baseline chosen on validation."""
    models = [lab for lab in values if lab not in baselines]
    rows = []
    for task, metric in metrics.items():
        sign = 1.0 if higher[task] else -1.0
        scored = [(sign * spread(values[b][task])["mean"], b) for b in baselines
                  if not math.isnan(spread(values[b][task])["mean"])]
        if not scored:
            continue
        best = max(scored)[1]
        value = spread(values[best][task])["mean"]
        row: dict[str, Any] = {"task": task, "metric": metric, "higher_is_better": higher[task],
                               "baseline": best, "baseline_value": value}
        for lab in models:
            cell = spread(values[lab][task])
            cell["gain_pct"] = relative_gain(cell["mean"], value, higher[task])
            cell["below"] = bool(cell["gain_pct"] < 0) if not math.isnan(cell["gain_pct"]) else None
            row[lab] = cell
        rows.append(row)
    return {"models": models, "rows": rows}


def baseline_table(vs: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "metric", "strongest baseline", "value"] + [h for lab in vs["models"]
                                                                   for h in (lab, "vs baseline")]
    body = []
    for r in vs["rows"]:
        arrow = "↑" if r["higher_is_better"] else "↓"
        line = [r["task"], f"{r['metric']} {arrow}", r["baseline"], f"{r['baseline_value']:.4f}"]
        for lab in vs["models"]:
            cell = r[lab]
            gain = "—" if math.isnan(cell["gain_pct"]) else f"{cell['gain_pct']:+.2f}%" + (" below" if cell["below"]
                                                                                          else "")
            line += [_pm(cell), gain]
        body.append(line)
    return header, body


def _pm(cell: dict[str, Any]) -> str:
    if math.isnan(cell["mean"]):
        return "—"
    return f"{cell['mean']:.4f} ± {cell['std']:.4f}" if len(cell["values"]) > 1 else f"{cell['mean']:.4f}"


def change_text(cell: dict[str, Any], markdown: bool = True) -> str:
    gain = cell["gain_pct"]
    if math.isnan(gain):
        return "—"
    text = f"{gain:+.2f}%"
    if cell.get("loses"):
        text += f" ▼ loses (p={cell['p_value']:.3f})"
        if markdown:
            text = f"**{text}**"
    return text


def summary_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The comparison as header + rows of text (the same in the markdown file, the terminal and the report)."""
    labels = summary["labels"]
    header = ["task", "metric", "single"] + [h for lab in labels for h in (lab, "vs single")]
    body = []
    for r in summary["rows"]:
        arrow = "↑" if r["higher_is_better"] else "↓"
        body.append([r["task"], f"{r['metric']} {arrow}", _pm(r["single"])]
                    + [c for lab in labels for c in (_pm(r[lab]), change_text(r[lab], markdown=False))])
    dm = summary["delta_m"]
    body.append(["Δm%", "", "0 (reference)"] + [c for lab in labels for c in (
        "—" if math.isnan(dm[lab]["mean"]) else
        (f"{dm[lab]['mean']:+.2f}% ± {dm[lab]['std']:.2f}" if len(dm[lab]["values"]) > 1
         else f"{dm[lab]['mean']:+.2f}%"), "")])
    return header, body


def markdown_table(summary: dict[str, Any]) -> str:
    header, body = summary_table(summary)
    return _markdown(header, body, "loses")


def _markdown(header: list[str], body: list[list[str]], bold: str) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in body:
        cells = [f"**{c}**" if bold in c else c for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_markdown(vs: dict[str, Any]) -> str:
    header, body = baseline_table(vs)
    return _markdown(header, body, "below")


@dataclass
class Variant:
    architecture: str
    balancer: str

    @property
    def label(self) -> str:
        return f"{self.architecture}/{self.balancer}"


def variant_config(base: ExperimentConfig, variant: Variant, seed: int, name: str,
                   output_dir: Path) -> ExperimentConfig:
    """`base` with another architecture and balancer (options the new ones do not take are dropped), a seed,
    a run name and folder."""
    from ..architectures import ARCHITECTURES
    from ..balancing import BALANCERS
    from ..config import check_components, config_from_dict

    raw = base.model_dump(mode="json")
    for section, key, registry, value in (("model", "architecture", ARCHITECTURES, variant.architecture),
                                          ("balance", "method", BALANCERS, variant.balancer)):
        cls = registry.get(value)
        accepted = set(cls.Options.model_fields)
        current = getattr(base, section)
        extras = set(current.model_extra or {})
        dropped = sorted(k for k in extras if k not in accepted) if value != getattr(current, key) else []
        for k in dropped:
            raw[section].pop(k)
        if dropped:
            log.info("%s: %s `%s` does not take %s; left out", variant.label, section, value, ", ".join(dropped))
        raw[section][key] = value
    raw.update(seed=seed, name=name, output_dir=str(output_dir))
    cfg = config_from_dict(raw, f"variant {variant.label}")
    check_components(cfg)
    return cfg


def variants(base: ExperimentConfig, architectures: list[str] | None,
             balancers: list[str] | None) -> list[Variant]:
    from ..architectures import ARCHITECTURES
    from ..balancing import BALANCERS

    archs = architectures or [base.model.architecture if base.model.architecture != "single" else "shared_bottom"]
    bals = balancers or [base.balance.method]
    for a in archs:
        ARCHITECTURES.get(a)
    for b in bals:
        BALANCERS.get(b)
    if "single" in archs:
        from ..errors import ConfigError

        raise ConfigError("--architectures: `single` is the baseline every comparison trains anyway; list only "
                          "multi-task architectures")
    return [Variant(a, b) for a in archs for b in bals]


def run_compare(base: ExperimentConfig, data: pd.DataFrame, architectures: list[str] | None = None,
                balancers: list[str] | None = None, seeds: int = 3, output_dir: str | Path | None = None,
                base_dir: Path | None = None, baselines: list[str] | None = None,
                wide_cache: Path | None = None) -> Path:
    """Train single-task and every variant for `seeds` seeds on `data` (and, with `baselines`, those
    practitioner's baseline families — [] for all — on the same split); write compare.json, compare.md and the
    report into a new folder `<output_dir>/<name>-compare[-k]`, and return it. The deterministic wide fits
    (`model.wide.pretrain` by L-BFGS) are kept in `wide_cache` (default: the folder's `wide_fits/`)."""
    from ..experiment import Experiment
    from ..run import unique_dir

    if seeds < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--seeds must be 1 or more, got {seeds}")
    todo = variants(base, architectures, balancers)
    families = None
    if baselines is not None:
        from .baselines import check_families

        families = check_families(baselines or None)
    folder = unique_dir(Path(output_dir or base.output_dir) / f"{base.name}-compare")
    folder.mkdir(parents=True)
    seed_list = [base.seed + k for k in range(seeds)]
    runs: dict[str, list[str]] = {"single": []}
    values: dict[str, dict[str, list[float]]] = {}
    metrics: dict[str, str] = {}
    higher: dict[str, bool] = {}
    valid: dict[str, dict[str, list[float]]] = {}
    jobs = [("single", Variant("single", "equal"))] + [(v.label, v) for v in todo]
    for seed in seed_list:
        for label, variant in jobs:
            name = f"{label.replace('/', '-')}-seed{seed}"
            log.info("compare: training %s, seed %d", label, seed)
            cfg = variant_config(base, variant, seed, name, folder)
            # the wide term's L-BFGS fit is the same for every seed and variant: fitted once, then read back
            run = Experiment(cfg, base_dir, wide_cache=wide_cache or folder / "wide_fits").fit(data=data)
            runs.setdefault(label, []).append(str(run.path.relative_to(folder)))
            for task_name, task in run.tasks.items():
                metrics.setdefault(task_name, task.primary)
                higher.setdefault(task_name, task.higher_is_better(task.primary))
                values.setdefault(label, {}).setdefault(task_name, []).append(
                    _metric(run, task_name, metrics[task_name], "test"))
                valid.setdefault(label, {}).setdefault(task_name, []).append(
                    _metric(run, task_name, metrics[task_name], "valid"))
    baseline_record, baseline_labels = None, []
    if families is not None:
        from .baselines import BASELINES, run_baselines

        log.info("compare: fitting the baselines (%s)", ", ".join(families))
        frames, tasks = Experiment(base, base_dir).prepare(data)
        baseline_record = run_baselines(base, frames, tasks, families)
        for family in families:
            entries = {t: baseline_record["tasks"][t].get(family) for t in metrics}
            if not any(entries.values()):
                continue
            label = f"baseline: {BASELINES.get(family).label}"
            baseline_labels.append(label)
            for split, target in (("test", values), ("valid", valid)):
                target[label] = {t: [(e.get(split, {}).get(metrics[t], math.nan) if e else math.nan)] * len(seed_list)
                                 for t, e in entries.items()}
    summary = summarise(values, metrics, higher)
    record = {"config": base.name, "seeds": seed_list, "split": "test",
              "variants": [{"label": v.label, "architecture": v.architecture, "balancer": v.balancer} for v in todo],
              "runs": runs, "summary": summary, "valid_summary": summarise(valid, metrics, higher),
              "epochs": base.train.epochs}
    if baseline_record is not None:
        record["baselines"] = baseline_record
        record["baseline_labels"] = baseline_labels
        record["vs_baseline"] = against_baselines(values, metrics, higher, baseline_labels)
    write_compare(folder, record)
    return folder


def write_compare(folder: Path, record: dict[str, Any]) -> None:
    from ..run import _clean
    from .report import write_compare_report

    (folder / "compare.json").write_text(json.dumps(_clean(record), indent=2), encoding="utf-8")
    md = [f"# {record['config']}: single- vs multi-task, seeds {', '.join(map(str, record['seeds']))}",
          "", f"Test split, primary metric per task (mean ± std over seeds; ↑ higher is better, ↓ lower); "
          f"`loses` = worse than single-task with Welch's p < {record['summary']['alpha']}.", "",
          markdown_table(record["summary"]), ""]
    if record.get("vs_baseline"):
        md += ["## Against the strongest baseline", "",
               "Per task, the baseline with the best test mean (a stricter bar than the one chosen on validation) "
               "and each model's change against it; `below` = worse.", "",
               baseline_markdown(record["vs_baseline"]), ""]
    (folder / "compare.md").write_text("\n".join(md), encoding="utf-8")
    write_compare_report(folder, record)


def load_compare(folder: Path) -> dict[str, Any]:
    record = json.loads((folder / "compare.json").read_text(encoding="utf-8"))

    def nan(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: nan(v) for k, v in x.items()}
        if isinstance(x, list):
            return [nan(v) for v in x]
        return math.nan if x is None else x

    if record.get("vs_baseline"):
        vs = record["vs_baseline"]
        for row in vs["rows"]:
            for lab in vs["models"]:
                row[lab] = {k: (v if k == "below" else nan(v)) for k, v in row[lab].items()}
    for key in ("summary", "valid_summary"):
        summary = record[key]
        for row in summary["rows"]:
            for lab in ["single", *summary["labels"]]:
                row[lab] = {k: (v if k == "loses" else nan(v)) for k, v in row[lab].items()}
        summary["delta_m"] = {k: nan(v) for k, v in summary["delta_m"].items()}
    return record
