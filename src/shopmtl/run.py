"""A trained run: config, preprocessing state, model weights, metrics and history — a folder that can be copied
to another machine, and the `evaluate` / `predict` verbs over it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from .config import ExperimentConfig, config_from_dict
from .data.batching import encode
from .data.preprocess import Preprocessor
from .data.readers import iter_table, read_table
from .data.tabular import table_format
from .errors import DataError, ShopMTLError
from .model import MultiTaskModel
from .tasks import Task, build_task
from .training.evaluate import evaluate, predict

RUN_FILES = ("config.yaml", "preprocessor.json", "model.pt")


def build_tasks(config: ExperimentConfig) -> dict[str, Task]:
    tasks = {name: build_task(name, cfg, config.task_column(name)) for name, cfg in config.tasks.items()}
    for task in tasks.values():
        task.bind(config)
    return tasks


def unique_dir(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`, … — never an existing folder."""
    if not path.exists():
        return path
    i = 2
    while path.with_name(f"{path.name}-{i}").exists():
        i += 1
    return path.with_name(f"{path.name}-{i}")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN → null, numpy scalars → Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Run:
    def __init__(self, config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task],
                 model: MultiTaskModel, metrics: dict[str, Any] | None = None,
                 history: list[dict[str, float]] | None = None, path: Path | None = None):
        self.config, self.preprocessor, self.tasks, self.model = config, preprocessor, tasks, model
        self.metrics = metrics or {}
        self.history = history or []
        self.path = path
        self.device = next(model.parameters()).device

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path | None = None, overwrite: bool = False) -> Path:
        """Write the run folder; an existing folder is never overwritten unless asked (a new name is taken)."""
        target = Path(path) if path else Path(self.config.output_dir) / self.config.name
        if not overwrite:
            target = unique_dir(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
        state = {"features": self.preprocessor.state_dict(), "tasks": {t: k.state() for t, k in self.tasks.items()}}
        (target / "preprocessor.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        torch.save(self.model.state_dict(), target / "model.pt")
        (target / "metrics.json").write_text(json.dumps(_clean(self.metrics), indent=2), encoding="utf-8")
        if self.history:
            pd.DataFrame(self.history).to_csv(target / "history.csv", index=False)
        from .analysis.report import write_report

        write_report(self, target / "report.html")
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Run:
        path = Path(path)
        missing = [f for f in RUN_FILES if not (path / f).is_file()]
        if missing:
            raise ShopMTLError(f"{path} is not a run folder: it lacks {', '.join(missing)} "
                               f"(a run folder is what `shopmtl train` writes under runs/<name>)")
        config = config_from_dict(yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")),
                                  str(path / "config.yaml"))
        state = json.loads((path / "preprocessor.json").read_text(encoding="utf-8"))
        preprocessor = Preprocessor.from_state(config, state["features"])
        tasks = build_tasks(config)
        for name, task in tasks.items():
            task.load_state(state["tasks"][name])
        model = MultiTaskModel(config, preprocessor, tasks)
        model.load_state_dict(torch.load(path / "model.pt", map_location=device, weights_only=True))
        model.to(device).eval()
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
        history = (pd.read_csv(path / "history.csv").to_dict("records")
                   if (path / "history.csv").exists() else [])
        return cls(config, preprocessor, tasks, model, metrics, history, path)

    # ---------------------------------------------------------------- verbs
    def predict(self, df: pd.DataFrame, batch_size: int = 4096) -> pd.DataFrame:
        """One output column per task (and detail columns such as `<task>_probability`), row for row."""
        enc = encode(df, self.preprocessor, self.tasks, with_labels=False)
        preds = predict(self.model, self.tasks, enc, batch_size, self.device, conditional=True)
        out: dict[str, Any] = {}
        for name, task in self.tasks.items():
            if task.text_feature is not None:  # spans: their text and character offsets in the input
                column = df[self.config.feature_column(task.text_feature)]
                offsets = self.preprocessor.processors[task.text_feature].offsets(column)
                out.update(task.decode(preds[name], (column.tolist(), offsets)))
                continue
            out.update(task.decode(preds[name]))
            parent = self.model.parents.get(name)
            if parent is not None:  # a funnel: its head's own p(task | parent), next to the entire-space p(task)
                out[f"{name}_given_{parent}"] = preds[f"{name}|{parent}"]
        return pd.DataFrame(out, index=df.index)

    def evaluate(self, df: pd.DataFrame, ignore_unseen: bool = False, batch_size: int = 4096) -> dict[str, Any]:
        """Metrics per task on a labelled table (tasks whose label column is absent are left out)."""
        present = [t for t in self.tasks.values() if t.column in df.columns]
        if not present:
            cols = [t.column for t in self.tasks.values()]
            raise DataError(f"the data has none of the label columns {cols}; evaluate needs labels")
        if not ignore_unseen:
            for task in present:
                unseen = task.unseen_labels(task.label_values(df))
                if unseen:
                    raise DataError(f"tasks.{task.name}: column `{task.column}` holds label(s) never seen in "
                                    f"training: {unseen[:10]}; the model cannot predict them. Remove those rows, "
                                    f"or pass --ignore-unseen-labels to leave them out of this task's metrics")
        enc = encode(df, self.preprocessor, self.tasks)
        metrics, _ = evaluate(self.model, self.tasks, enc, batch_size, self.device)
        return metrics

    def read(self, path: str | Path, fmt: str | None = None) -> pd.DataFrame:
        """A file or folder in the run's source format (or `fmt`, or csv/parquet by its name)."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path} does not exist")
        fmt = fmt or (table_format(path) if path.is_file() and self.config.data.source.format in ("csv", "parquet")
                      else None) or self.config.data.source.format
        options = self.config.data.source.options if fmt == self.config.data.source.format else {}
        return read_table(fmt, path, options)

    def split_frame(self, split: str = "test") -> pd.DataFrame:
        """The rows of one split of the run's own source, split as in training."""
        from .data.splits import assign_splits
        from .experiment import Experiment

        try:
            df = Experiment(self.config).read_data()
        except DataError as err:
            raise DataError(f"{err}\n(the run reads its own source to find its {split} split; or pass a file "
                            f"with --data)") from None
        return df[assign_splits(df, self.config.data.split) == split]

    def explain(self, df: pd.DataFrame, steps: int = 64) -> tuple[dict[str, Any], dict[str, Any]]:
        """Per task, the attribution of each input (and each token of a text feature) to the prediction for
        the rows of `df` (one row is what this is for), and the predictions themselves."""
        from .analysis.explain import explain_row

        enc = encode(df, self.preprocessor, self.tasks, with_labels=False)
        explained = explain_row(self.model, self.tasks, self.preprocessor, enc, steps)
        predictions = {k: _clean(v) for k, v in self.predict(df).iloc[0].to_dict().items()}
        return explained, predictions

    def predict_file(self, source: str | Path, output: str | Path, fmt: str | None = None,
                     chunksize: int = 50_000, keep: list[str] | None = None, overwrite: bool = False) -> int:
        """Stream `source` in chunks through the model into `output` (CSV or Parquet); returns the row count."""
        source, output = Path(source), Path(output)
        out_fmt = table_format(output)
        if out_fmt is None:
            raise DataError(f"{output}: the output must end in .csv or .parquet")
        if output.exists() and not overwrite:
            raise DataError(f"{output} exists; choose another name or pass --overwrite")
        if not source.exists():
            raise DataError(f"{source} does not exist")
        fmt = fmt or (table_format(source) if source.is_file() else None) or self.config.data.source.format
        options = self.config.data.source.options if fmt == self.config.data.source.format else {}
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".partial")
        rows, writer = 0, None
        try:
            for chunk in iter_table(fmt, source, options, chunksize):
                missing = [c for c in keep or [] if c not in chunk.columns]
                if missing:
                    raise DataError(f"--keep: column(s) {missing} not in {source}")
                pred = self.predict(chunk)
                frame = pd.concat([chunk[keep].reset_index(drop=True), pred.reset_index(drop=True)], axis=1) \
                    if keep else pred
                writer = _write_chunk(frame, tmp, out_fmt, writer, first=rows == 0)
                rows += len(frame)
        finally:
            if writer is not None:
                writer.close()
        tmp.replace(output)
        return rows


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of structured values (a tagging task's spans per row) as JSON text, which CSV and Parquet hold."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and len(out) and isinstance(out[col].iloc[0], dict | list):
            out[col] = out[col].map(lambda v: json.dumps(v, ensure_ascii=False))
    return out


def _write_chunk(frame: pd.DataFrame, path: Path, fmt: str, writer: Any, first: bool) -> Any:
    frame = _flat(frame)
    if fmt == "csv":
        frame.to_csv(path, mode="w" if first else "a", header=first, index=False)
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table.cast(writer.schema))
    return writer
