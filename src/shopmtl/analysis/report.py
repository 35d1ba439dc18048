"""Reports people can look at: one self-contained HTML page per run (`<run>/report.html`) and per comparison
(`<name>-compare/report.html`), every figure inline (base64 PNG) and also saved as a PNG under `figures/`; no
script, no external file, so the page opens offline and can be mailed around. `shopmtl report PATH` rewrites it.

A run's page: metrics per split, learning curves per task, task weights and gradient conflict over time, the
inter-task affinity and gradient-cosine heatmaps with the suggested task groups, expert use, and which inputs drive
each task (integrated gradients). A comparison's page: the comparison table and a gain chart, then the same
figures for each variant's first seed."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run import Run

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0}"
         "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.lose{color:#b00;font-weight:bold}"
         "img{max-width:100%;display:block;margin:.5em 0}h2{margin-top:1.5em}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4f}"
    return "—" if v is None else html.escape(str(v))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------ figures (PNG bytes, or None without data)
def learning_curves_png(history: list[dict[str, float]], primary: dict[str, str]) -> bytes | None:
    """One panel per task: training loss, validation loss and the primary validation metric per epoch."""
    if not history:
        return None
    plt = _plt()
    epochs = [int(h["epoch"]) for h in history]
    fig, axes = plt.subplots(1, len(primary), figsize=(4 * len(primary), 3.2), squeeze=False)
    for ax, (name, metric) in zip(axes[0], primary.items(), strict=True):
        ax.plot(epochs, [h.get(f"train.{name}.loss") for h in history], "o-", label="train loss")
        ax.plot(epochs, [h.get(f"valid.{name}.loss") for h in history], "s-", label="valid loss")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        twin = ax.twinx()
        twin.plot(epochs, [h.get(f"valid.{name}.{metric}") for h in history], "^--", color="tab:green",
                  label=f"valid {metric}")
        twin.set_ylabel(metric)
        ax.legend(loc="upper left", fontsize=7)
        twin.legend(loc="upper right", fontsize=7)
    return _png(fig)


def lines_png(history: list[dict[str, float]], prefix: str, title: str, ylabel: str,
              skip: tuple[str, ...] = ()) -> bytes | None:
    """Every history column starting with `prefix` as a line over epochs."""
    keys = sorted({k for h in history for k in h if k.startswith(prefix) and k not in skip})
    if not keys:
        return None
    plt = _plt()
    epochs = [int(h["epoch"]) for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for k in keys:
        ax.plot(epochs, [h.get(k) for h in history], "o-", label=k[len(prefix):].replace(".", " · "))
    if ylabel == "cosine":
        ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _png(fig)


def heatmap_png(matrix: dict[str, dict[str, float | None]] | None, title: str, rows_label: str,
                cols_label: str, fmt: str = "{:+.2f}", scale: float = 1.0, hide_diagonal: bool = False) -> bytes | None:
    """A diverging heatmap centred on 0 (red: negative, blue: positive), each cell labelled; the colour scale
    follows the off-diagonal cells (the diagonal, a task with itself, would drown them)."""
    if not matrix:
        return None
    plt = _plt()
    import numpy as np

    rows = list(matrix)
    cols = list(next(iter(matrix.values())))
    data = np.array([[np.nan if matrix[r].get(c) is None or (hide_diagonal and r == c) else matrix[r][c] * scale
                      for c in cols] for r in rows], dtype=float)
    off = np.array([[data[i, j] for j, c in enumerate(cols) if c != r] for i, r in enumerate(rows)], dtype=float)
    pool = off if np.isfinite(off).any() else data
    bound = float(np.nanmax(np.abs(pool))) if np.isfinite(pool).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2.5, 0.8 * len(rows) + 1.8))
    im = ax.imshow(data, cmap="RdBu", vmin=-bound or -1, vmax=bound or 1)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(cols_label)
    ax.set_ylabel(rows_label)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isfinite(data[i, j]):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center", fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)


def expert_use_png(use: dict[str, Any] | None) -> bytes | None:
    """Mean gate weight per expert, one row per gate."""
    if not use or not use.get("gates"):
        return None
    plt = _plt()
    import numpy as np

    gates = list(use["gates"])
    width = max(len(spec["experts"]) for spec in use["gates"].values())
    data = np.full((len(gates), width), np.nan)
    for i, g in enumerate(gates):
        data[i, : len(use["gates"][g]["weights"])] = use["gates"][g]["weights"]
    fig, ax = plt.subplots(figsize=(0.9 * width + 3, 0.6 * len(gates) + 1.8))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=max(float(np.nanmax(data)), 1e-9))
    ax.set_yticks(range(len(gates)), gates)
    widest = max(use["gates"].values(), key=lambda spec: len(spec["experts"]))
    ax.set_xticks(range(width), widest["experts"], rotation=30, ha="right")
    for i in range(len(gates)):
        for j in range(width):
            if np.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=8, color="white")
    ax.set_title("expert use: mean gate weight (validation)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)


def explanations_png(explanations: dict[str, Any] | None) -> bytes | None:
    """Tasks × input features: each feature's share of the task's attribution (mean |integrated gradients|)."""
    if not explanations or not explanations.get("tasks"):
        return None
    shares = {t: spec["feature_share"] for t, spec in explanations["tasks"].items()}
    plt = _plt()
    import numpy as np

    tasks = list(shares)
    features = list(next(iter(shares.values())))
    data = np.array([[shares[t].get(f, np.nan) for f in features] for t in tasks], dtype=float)
    fig, ax = plt.subplots(figsize=(max(0.75 * len(features) + 3, 6.0), 0.6 * len(tasks) + 2.2))
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=max(float(np.nanmax(data)), 1e-9))
    ax.set_xticks(range(len(features)), features, rotation=40, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    for i in range(len(tasks)):
        for j in range(len(features)):
            ax.text(j, i, f"{data[i, j]:.0%}", ha="center", va="center", fontsize=7)
    ax.set_title("which inputs drive each task (share of |integrated gradients|)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)


def comparison_png(summary: dict[str, Any]) -> bytes | None:
    """Per task, each variant's change against single-task in % (mean ± std over seeds); hatched bars lose
    significantly."""
    labels, rows = summary["labels"], summary["rows"]
    if not labels or not rows:
        return None
    plt = _plt()
    import numpy as np

    base = [r["single"]["mean"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) * len(labels) ** 0.5 + 2), 3.8))
    width = 0.8 / len(labels)
    x = np.arange(len(rows))
    for k, lab in enumerate(labels):
        gains = [r[lab]["gain_pct"] for r in rows]
        errs = [abs(r[lab]["std"] / b) * 100 if b and not math.isnan(r[lab]["std"]) else 0.0
                for r, b in zip(rows, base, strict=True)]
        bars = ax.bar(x + (k - (len(labels) - 1) / 2) * width, gains, width, yerr=errs, capsize=3, label=lab)
        for bar, r in zip(bars, rows, strict=True):
            if r[lab].get("loses"):  # hatched: loses significantly
                bar.set_hatch("///")
                bar.set_edgecolor("black")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [r["task"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("change vs single-task (%)")
    ax.set_title("who gains, who loses (test; bars: mean over seeds, whiskers: std; hatched: loses, p < 0.05)")
    ax.legend(fontsize=7)
    return _png(fig)


# ------------------------------------------------------------------ page assembly
class Page:
    """HTML parts of one report; each figure is inlined and saved as `figures/<name>.png` next to the page."""

    def __init__(self, folder: Path, title: str):
        self.folder, self.title, self.parts = folder, title, [f"<h1>{html.escape(title)}</h1>"]
        self.figures: list[str] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, name: str, png: bytes | None, heading: str, caption: str = "") -> None:
        if png is None:
            return
        figures = self.folder / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        (figures / f"{name}.png").write_bytes(png)
        data = base64.b64encode(png).decode("ascii")
        self.figures.append(name)
        self.parts.append(f"<h2>{html.escape(heading)}</h2>" + (f"<p>{html.escape(caption)}</p>" if caption else "")
                          + f'<img alt="{html.escape(name)}" data-figure="{html.escape(name)}" '
                            f'src="data:image/png;base64,{data}">')

    def write(self, path: Path) -> None:
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{STYLE}</style></head><body>{''.join(self.parts)}</body></html>")
        path.write_text(page, encoding="utf-8")


def table(header: list[str], rows: list[list[Any]], lose: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class='lose'>{_fmt(v)}</td>" if lose and isinstance(v, str) and ("loses" in v or v.endswith(" below"))
        else f"<td>{_fmt(v)}</td>"
        for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _notes_html(metrics: dict[str, Any]) -> list[str]:
    """Funnel data checks, architecture notes and expert-collapse flags."""
    parts = []
    funnels = metrics.get("funnels")
    if funnels:
        rows = [[t, f["after"], f["positives"], f["outside_parent"], f"{f['share']:.1%}"] for t, f in funnels.items()]
        parts.append("<h2>funnels (training split)</h2>" + table(
            ["task", "after", "positives", "positives with a negative parent", "share"], rows))
    for note in metrics.get("notes", []):
        parts.append(f"<p><b>note:</b> {html.escape(note)}</p>")
    use = metrics.get("expert_use")
    if use:
        flags = use.get("flags") or ["no expert collapse flagged"]
        parts.append("<h2>expert collapse check</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in flags)
                     + "</ul>")
    return parts


def run_figures(page: Page, metrics: dict[str, Any], history: list[dict[str, float]], primary: dict[str, str],
                prefix: str = "") -> None:
    """Every figure a run has data for, named `<prefix><figure>`."""
    page.figure(f"{prefix}learning_curves", learning_curves_png(history, primary), "learning curves per task",
                "training and validation loss, and the primary validation metric, per epoch")
    page.figure(f"{prefix}task_weights", lines_png(history, "weight.", "task weights", "weight"),
                "task weights over time", "the balancer's mean weight per task in each epoch")
    page.figure(f"{prefix}conflict_over_time", lines_png(history, "conflict.", "gradient conflict", "cosine",
                                                         skip=("conflict.negative_share",)),
                "gradient conflict over time", "mean cosine of each pair of task gradients on the shared "
                "parameters per epoch (below 0: they pull against each other)")
    page.figure(f"{prefix}gradient_cosine", heatmap_png(metrics.get("gradient_cosine"), "gradient cosine",
                                                        "task", "task", hide_diagonal=True),
                "gradient-cosine matrix", "mean over the run of the cosine between task gradients on the shared "
                "parameters")
    page.figure(f"{prefix}affinity", heatmap_png(metrics.get("affinity"), "affinity Z[i → j] (×10³)",
                                                 "step for task i", "loss of task j", "{:+.2f}", 1e3),
                "inter-task affinity (look-ahead)", "1 − L_j after a step for task i alone / L_j before, mean "
                "over the run: positive = a step for i helps j, negative = it hurts j")
    groups = metrics.get("task_groups")
    if groups:
        rows = [[k, " | ".join(" + ".join(g) for g in spec["groups"]), f"{spec['score']:+.3e}"]
                for k, spec in groups["by_count"].items()]
        page.add("<p><b>suggested task groups:</b> " + html.escape(" | ".join(" + ".join(g)
                 for g in groups["groups"])) + "</p>" + table(["groups", "best split", "affinity score"], rows))
    page.figure(f"{prefix}expert_use", expert_use_png(metrics.get("expert_use")), "expert use",
                "mean gate weight per expert on the validation split")
    explanations = metrics.get("explanations")
    page.figure(f"{prefix}explanations", explanations_png(explanations), "which inputs drive each task",
                f"integrated gradients (Captum) over {explanations.get('rows', '?')} validation rows, against an "
                "all-padding / zero baseline; share of each input's mean |attribution|" if explanations else "")
    if explanations:
        rows = [[t, ", ".join(f"{tok} ({w:+.3f})" for tok, w in spec.get("top_tokens", [])[:8]) or "—"]
                for t, spec in explanations["tasks"].items()]
        page.add("<h3>tokens with the largest mean attribution per task</h3>" + table(["task", "tokens"], rows))
        if explanations.get("skipped"):
            page.add("<p>" + html.escape("not explained: " + "; ".join(explanations["skipped"])) + "</p>")


def write_report(run: Run, path: Path) -> None:
    page = Page(path.parent, f"shopmtl run: {run.config.name}")
    page.add(f"<p>architecture <b>{html.escape(run.config.model.architecture)}</b>, balancer "
             f"<b>{html.escape(run.config.balance.method)}</b>, rows {html.escape(str(run.metrics.get('rows')))}, "
             f"training {run.metrics.get('train_seconds', '—')} s</p>")
    for split in ("valid", "test"):
        per_task = run.metrics.get(split)
        if per_task:
            rows = [[task, k, v] for task, values in per_task.items() for k, v in values.items()]
            page.add(f"<h2>{split} metrics</h2>" + table(["task", "metric", "value"], rows))
    for part in _notes_html(run.metrics):
        page.add(part)
    run_figures(page, run.metrics, run.history, {name: task.primary for name, task in run.tasks.items()})
    page.write(path)


def _read_run(folder: Path) -> tuple[dict[str, Any], list[dict[str, float]]]:
    import pandas as pd

    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    history = pd.read_csv(folder / "history.csv").to_dict("records") if (folder / "history.csv").exists() else []
    return metrics, history


def write_compare_report(folder: Path, record: dict[str, Any]) -> None:
    from .compare import summary_table

    summary = record["summary"]
    page = Page(folder, f"shopmtl compare: {record['config']}")
    page.add(f"<p>seeds {', '.join(map(str, record['seeds']))}; every run with the same data, split and budget "
             f"({record.get('epochs', '?')} epochs at most, early stopping as configured). Test split, primary "
             "metric per task, mean ± std over seeds; ↑ higher is better, ↓ lower is better. "
             f"<b>loses</b>: worse than single-task with Welch's t-test p &lt; {summary['alpha']}.</p>")
    header, body = summary_table(summary)
    page.add("<h2>comparison (test)</h2>" + table(header, body, lose=True))
    page.figure("comparison", comparison_png(summary), "who gains, who loses",
                "change of each task's primary test metric against single-task, per variant")
    if record.get("vs_baseline"):
        from .compare import baseline_table

        header, body = baseline_table(record["vs_baseline"])
        page.add("<h2>against the strongest baseline (test)</h2><p>per task, the practitioner's baseline with the "
                 "best test mean, and each model's change against it (<b>below</b>: worse)</p>"
                 + table(header, body, lose=True))
    valid = record.get("valid_summary")
    if valid:
        header, body = summary_table(valid)
        page.add("<h2>comparison (validation)</h2>" + table(header, body, lose=True))
    primary = {r["task"]: r["metric"] for r in summary["rows"]}
    for label, paths in record["runs"].items():
        if label == "single" or not paths:
            continue
        run_folder = folder / paths[0]
        if not (run_folder / "metrics.json").exists():
            continue
        metrics, history = _read_run(run_folder)
        page.add(f"<h2 style='border-top:2px solid #888;padding-top:.5em'>{html.escape(label)} "
                 f"(seed {record['seeds'][0]}, {html.escape(paths[0])})</h2>")
        run_figures(page, metrics, history, primary, prefix=f"{label.replace('/', '-')}-")
    page.write(folder / "report.html")


def regenerate(path: Path) -> Path:
    """Rewrite the report of a run folder or a comparison folder; returns the page's path."""
    from ..errors import ShopMTLError

    if (path / "compare.json").is_file():
        from .compare import load_compare

        write_compare_report(path, load_compare(path))
        return path / "report.html"
    if (path / "metrics.json").is_file() and (path / "config.yaml").is_file():
        from ..run import Run

        run = Run.load(path)
        write_report(run, path / "report.html")
        return path / "report.html"
    raise ShopMTLError(f"{path} is neither a run folder (config.yaml, metrics.json) nor a comparison folder "
                       "(compare.json): give the folder `shopmtl train` or `shopmtl compare` printed")
