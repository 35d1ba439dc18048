"""Optional logging of a finished run to MLflow (`tracking: {mlflow: {...}}` in the experiment file): the
flattened config as params, every history column per epoch, the valid/test metrics, and the run's small files
(config, metrics, history, report with its figures) as artifacts. A local file store (`file:./mlruns`, the
default) needs no server; `mlflow ui --backend-store-uri ./mlruns` shows it."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..run import Run

log = logging.getLogger("shopmtl")
ARTIFACTS = ("config.yaml", "metrics.json", "history.csv", "report.html")
MLFLOW_NAME = str.maketrans({c: "_" for c in "|:@,;"})


def check_mlflow(config: ExperimentConfig) -> None:
    """Fail before training when MLflow logging is asked for but MLflow is not installed."""
    if config.tracking.mlflow is None:
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("tracking.mlflow: MLflow is not installed; pip install mlflow-skinny (or "
                          "pip install 'shopmtl[mlflow]'), or remove `tracking.mlflow` from the config") from None


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: str(value)[:500]}


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k.translate(MLFLOW_NAME): float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}


def log_to_mlflow(run: Run) -> str | None:
    """Log `run` (saved) to MLflow when its config asks for it; returns the MLflow run id."""
    spec = run.config.tracking.mlflow
    if spec is None or run.path is None:
        return None
    check_mlflow(run.config)
    import mlflow

    uri = spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (Path.cwd() / "mlruns").resolve().as_uri()
    if uri.startswith("file:"):  # a plain folder: MLflow 3 keeps it working only when asked to
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(spec.experiment or run.config.name)
    with mlflow.start_run(run_name=run.path.name) as active:
        params = _flatten(run.config.model_dump(mode="json"))
        items = list(params.items())
        for start in range(0, len(items), 100):
            mlflow.log_params(dict(items[start: start + 100]))
        for row in run.history:
            step = int(row.get("epoch", 0))
            mlflow.log_metrics(_numbers({k: v for k, v in row.items() if k != "epoch"}), step=step)
        final = {f"{split}.{task}.{m}": v for split in ("valid", "test")
                 for task, values in (run.metrics.get(split) or {}).items() for m, v in values.items()}
        final["train_seconds"] = run.metrics.get("train_seconds")
        mlflow.log_metrics(_numbers(final))
        for name in ARTIFACTS:
            if (run.path / name).is_file():
                mlflow.log_artifact(str(run.path / name))
        if (run.path / "figures").is_dir():
            mlflow.log_artifacts(str(run.path / "figures"), artifact_path="figures")
        log.info("logged to MLflow at %s (experiment %s, run %s)", uri, spec.experiment or run.config.name,
                 active.info.run_id)
        return active.info.run_id
