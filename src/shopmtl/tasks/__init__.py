"""Task types. Each owns its labels' encoding, output layer, loss, metrics and decoding of predictions."""

from . import binary, multiclass, multilabel, regression, tagging  # noqa: F401,E402  (register the types)
from .base import TASK_TYPES, Task, build_task

__all__ = ["TASK_TYPES", "Task", "build_task"]
