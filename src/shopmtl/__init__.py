"""shopmtl: multi-task learning on e-commerce data — one model, several related tasks."""

from .experiment import Experiment
from .run import Run

__all__ = ["Experiment", "Run", "__version__"]
__version__ = "0.1.0"
