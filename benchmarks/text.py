"""Benchmark for the text issue: each text recipe as one multi-task model and as single-task models, against the
baselines a practitioner would pick instead, trained and measured in this same script on the same train / valid /
test rows and scored by the same task code:

- TF-IDF (token uni- and bigrams; Chinese text is read by character) + logistic regression per classification
  task, ridge per regression task; C / alpha chosen per task on the validation split;
- a linear-chain CRF over character-window features (sklearn-crfsuite) per tagging task.

Throughput: rows per second of the multi-task model predicting every task at once, against the per-task
baselines run one after another, in one process on one thread each, over the same test rows (best of 3).

    python benchmarks/text.py [--configs taobao_titles,books,toys,chinese_reviews,catalog] [--jobs 2]
                              [--reuse benchmarks/out/<stamp>]   # take finished run folders from an earlier pass
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import OUT, ROOT, SHOWN, collect, fmt, gain, machine, run_all, run_name, task_types, train

RECIPES = ["taobao_titles", "books", "toys", "chinese_reviews", "catalog"]
VARIANTS: dict[str, list[str]] = {"multi": [], "single": ["model.architecture=single"]}
EXTRA = {  # recipe → more multi-task variants: the pretrained encoder (frozen) where the text is English
    "books": {"multi_minilm": ["model.text.encoder=pretrained"]},
}
C_GRID, ALPHA_GRID = (1.0, 10.0), (1.0, 10.0)


# ---------------------------------------------------------------- data exactly as an experiment splits it
def recipe_data(config: str, data_dir: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from shopmtl.data.readers import READERS
    from shopmtl.data.splits import SPLITS, assign_splits
    from shopmtl.experiment import Experiment
    from shopmtl.run import build_tasks

    exp = Experiment.from_yaml(ROOT / "configs" / f"{config}.yaml")
    src = exp.config.data.source
    src.path = str(Path(data_dir) / READERS.get(src.format).folder)
    df = exp.read_data()
    split = assign_splits(df, exp.config.data.split)
    frames = {s: df[split == s] for s in SPLITS}
    tasks = build_tasks(exp.config)
    for task in tasks.values():
        task.fit(task.label_values(frames["train"]))
    return exp.config, frames, tasks


def token_lists(cfg: Any, frame: Any, feature: str) -> list[list[str]]:
    from shopmtl.data.text import is_tokens, tokenize

    f = cfg.features[feature]
    values = frame[cfg.feature_column(feature)].tolist()
    return [tokenize(v, f.tokenizer, f.lowercase)[: f.max_len] if isinstance(v, str) or is_tokens(v) else []
            for v in values]


def ngrams(tokens: list[str]) -> list[str]:
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


# ---------------------------------------------------------------- baselines
class TfidfInputs:
    """One TF-IDF matrix per text feature, stacked (other feature kinds are left out, as in a text baseline)."""

    def __init__(self, cfg: Any):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.cfg = cfg
        self.text = [n for n, f in cfg.features.items() if f.type == "text"]
        self.vectorizers = {n: TfidfVectorizer(analyzer=ngrams, min_df=2, sublinear_tf=True, max_features=200_000)
                            for n in self.text}

    def fit(self, frame: Any) -> TfidfInputs:
        for n, v in self.vectorizers.items():
            v.fit(token_lists(self.cfg, frame, n))
        return self

    def transform(self, frame: Any) -> Any:
        from scipy.sparse import hstack

        return hstack([v.transform(token_lists(self.cfg, frame, n)) for n, v in self.vectorizers.items()]).tocsr()


def _labels(task: Any, frame: Any) -> tuple[np.ndarray, np.ndarray]:
    return task.encode(task.label_values(frame))


def _proba(model: Any, x: Any, n_classes: int) -> np.ndarray:
    out = np.zeros((x.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def linear_baseline(task: Any, inputs: TfidfInputs, frames: dict[str, Any]) -> dict[str, Any]:
    """TF-IDF + logistic regression (ridge for regression), its setting chosen on the validation split."""
    from sklearn.linear_model import LogisticRegression, Ridge

    x = {s: inputs.transform(f) for s, f in frames.items() if len(f)}
    y = {s: _labels(task, f) for s, f in frames.items() if len(f)}
    kind = task.cfg.type

    def fit(setting: float) -> Any:
        t, m = y["train"]
        if kind == "regression":
            return Ridge(alpha=setting).fit(x["train"][m], t[m])
        return LogisticRegression(C=setting, max_iter=300).fit(x["train"][m], t[m].astype(int))

    def predict(model: Any, split: str) -> np.ndarray:
        if kind == "regression":
            return model.predict(x[split]) * task.std + task.mean
        if kind == "binary":
            return _proba(model, x[split], 2)[:, 1]
        return _proba(model, x[split], task.n_outputs)

    def score(model: Any, split: str) -> dict[str, float]:
        t, m = y[split]
        return task.metrics(t[m], predict(model, split)[m])

    sign = 1 if task.higher_is_better(task.primary) else -1
    fitted = [(setting, fit(setting)) for setting in (ALPHA_GRID if kind == "regression" else C_GRID)]
    setting, model = max(fitted, key=lambda sm: sign * np.nan_to_num(score(sm[1], "valid")[task.primary], nan=-1e9))
    return {"setting": {"alpha" if kind == "regression" else "C": setting}, "model": model,
            "test": score(model, "test"), "valid": score(model, "valid")}


def char_features(tokens: list[str]) -> list[dict[str, Any]]:
    """Per token: itself and its neighbours two either side, the bigrams around it, its shape."""
    feats = []
    for i, tok in enumerate(tokens):
        f: dict[str, Any] = {"bias": 1.0, "t": tok, "digit": tok.isdigit(), "ascii": tok.isascii() and tok.isalpha()}
        for d in (-2, -1, 1, 2):
            j = i + d
            f[f"t{d:+d}"] = tokens[j] if 0 <= j < len(tokens) else ("<s>" if j < 0 else "</s>")
        f["bi-1"] = f["t-1"] + tok
        f["bi+1"] = tok + f["t+1"]
        feats.append(f)
    return feats


def crf_baseline(task: Any, cfg: Any, frames: dict[str, Any]) -> dict[str, Any]:
    import sklearn_crfsuite

    def rows(split: str) -> tuple[list, np.ndarray, np.ndarray, list]:
        tokens = token_lists(cfg, frames[split], task.text_feature)
        target, mask = _labels(task, frames[split])
        return [char_features(t) for t in tokens], target, mask, tokens

    def tags(target_row: np.ndarray) -> list[str]:
        return [task.tags[j] for j in target_row[target_row >= 0]]

    x, t, m, _ = rows("train")
    model = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100,
                                 all_possible_transitions=True)
    model.fit([x[i] for i in np.flatnonzero(m)], [tags(t[i]) for i in np.flatnonzero(m)])

    def score(split: str) -> dict[str, float]:
        xs, ts, ms, _ = rows(split)
        pred = np.full_like(ts, -1)
        for i, seq in enumerate(model.predict(xs)):
            n = min(len(seq), pred.shape[1])
            pred[i, :n] = [task.tag_index.get(tag, 0) for tag in seq[:n]]
        return task.metrics(ts[ms], pred[ms])

    return {"setting": {"c1": 0.1, "c2": 0.1}, "model": model, "test": score("test"), "valid": score("valid")}


def baselines(cfg: Any, frames: dict[str, Any], tasks: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    inputs = TfidfInputs(cfg).fit(frames["train"])
    out = {}
    for name, task in tasks.items():
        start = time.perf_counter()
        out[name] = crf_baseline(task, cfg, frames) if task.cfg.type == "tagging" else \
            linear_baseline(task, inputs, frames)
        out[name]["fit_seconds"] = round(time.perf_counter() - start, 1)
        print(f"  baseline {name}: {out[name]['test'][task.primary]:.4f} ({out[name]['fit_seconds']} s)", flush=True)
    return out, inputs


# ---------------------------------------------------------------- throughput
def throughput(run_path: str, cfg: Any, frame: Any, tasks: dict[str, Any], fitted: dict[str, Any],
               inputs: TfidfInputs) -> dict[str, float]:
    """Rows per second on `frame`: the multi-task model (every task in one pass) vs the baselines in turn."""
    import torch

    from shopmtl.run import Run

    run = Run.load(run_path)
    run.predict(frame.iloc[:64])  # warm-up

    def per_task_baselines() -> None:
        for name, task in tasks.items():
            model = fitted[name]["model"]
            if task.cfg.type == "tagging":
                model.predict([char_features(t) for t in token_lists(cfg, frame, task.text_feature)])
            elif task.cfg.type == "regression":
                model.predict(inputs.transform(frame))
            else:
                model.predict_proba(inputs.transform(frame))

    def best_of(fn: Any, n: int = 3) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.inference_mode():
        mtl = best_of(lambda: run.predict(frame, batch_size=256))
    base = best_of(per_task_baselines)
    return {"rows": len(frame), "multi_task_rows_per_s": len(frame) / mtl, "baselines_rows_per_s": len(frame) / base}


# ---------------------------------------------------------------- report
def markdown(results: dict[str, Any], command: str) -> str:
    lines = [machine(), "", f"Last command: `{command}` (each section names the command that produced it)", ""]
    for config, r in results.items():
        kinds = task_types(config)
        neural = r["neural"]
        variants = [v for v in ("single", "multi", "multi_minilm") if v in neural]
        rows = neural["multi"]["rows"]
        lines += [f"### {config} (rows train/valid/test: {rows['train']}/{rows['valid']}/{rows['test']})", "",
                  f"Command: `{r.get('command', command)}`", "",
                  "| task | metric | " + " | ".join(variants) + " | baseline | multi vs single | multi vs baseline |",
                  "| --- | --- |" + " ---: |" * (len(variants) + 3)]
        for task, kind in kinds.items():
            base = r["baselines"][task]
            name = "CRF (char windows)" if kind == "tagging" else ("TF-IDF + ridge" if kind == "regression"
                                                                   else "TF-IDF + LR")
            for i, metric in enumerate(SHOWN[kind]):
                values = [neural[v]["test"][task].get(metric) for v in variants]
                b = base["test"].get(metric)
                if all(v is None or v != v for v in [*values, b]):
                    continue  # e.g. GAUC without a group column
                m, s = neural["multi"]["test"][task].get(metric), neural["single"]["test"][task].get(metric)
                lines.append(f"| {task if i == 0 else ''} | {metric} | " + " | ".join(fmt(v) for v in values) +
                             f" | {fmt(b)} {name if i == 0 else ''} | {gain(m, s, metric):+.2f}% | "
                             f"{gain(m, b, metric):+.2f}% |")
        t = r["throughput"]
        secs = {v: neural[v]["train_seconds"] for v in variants}
        lines += ["", f"Throughput over the {t['rows']} test rows, every task: one multi-task model "
                      f"**{t['multi_task_rows_per_s']:.0f} rows/s**, the per-task baselines one after another "
                      f"{t['baselines_rows_per_s']:.0f} rows/s (ratio "
                      f"{t['multi_task_rows_per_s'] / t['baselines_rows_per_s']:.2f}×). Training seconds: "
                      + ", ".join(f"{v} {s:.0f}" for v, s in secs.items()) + ", baselines "
                      f"{sum(b['fit_seconds'] for b in r['baselines'].values()):.0f} (all tasks, incl. the "
                      f"validation choice).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default=",".join(RECIPES))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--render", action="store_true")
    p.add_argument("--reuse", default=None, help="a folder of finished run folders to take instead of retraining")
    args = p.parse_args()
    saved, report = OUT / "text.json", OUT / "text.md"
    command = "python benchmarks/text.py " + " ".join(sys.argv[1:])
    if args.render:
        data = json.loads(saved.read_text())
        report.write_text(markdown(data["results"], data["command"]))
        return
    configs = args.configs.split(",")
    runs = ROOT / "benchmarks" / "out" / time.strftime("%Y%m%d-%H%M%S")
    jobs = [(c, label, overrides) for c in configs
            for label, overrides in {**VARIANTS, **EXTRA.get(c, {})}.items()]

    def one(job: tuple[str, str, list[str]]) -> dict:
        config, label, overrides = job
        earlier = Path(args.reuse or "/nonexistent") / run_name(config, label)
        if (earlier / "metrics.json").is_file():
            return collect(earlier, config, label, overrides)
        r = train(config, label, args.data_dir, runs, overrides + (["train.threads=1"] if args.jobs > 1 else []))
        print(f"{config} / {label}: {r['train_seconds']} s ({r['run']})", flush=True)
        return r

    neural = run_all(jobs, one, args.jobs)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    results = json.loads(saved.read_text())["results"] if saved.exists() else {}
    with threadpool_limits(1):
        for config in configs:
            print(f"{config}: baselines", flush=True)
            cfg, frames, tasks = recipe_data(config, args.data_dir)
            fitted, inputs = baselines(cfg, frames, tasks)
            mine = {r["architecture"]: r for r in neural if r["config"] == config}
            speed = throughput(mine["multi"]["run"], cfg, frames["test"], tasks, fitted, inputs)
            results[config] = {
                "command": command, "neural": mine, "throughput": speed,
                "baselines": {t: {k: v for k, v in b.items() if k != "model"} for t, b in fitted.items()}}
            OUT.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps({"command": command, "results": results}, indent=2, default=float))
            report.write_text(markdown(results, command))
    print(markdown(results, command))


if __name__ == "__main__":
    main()
