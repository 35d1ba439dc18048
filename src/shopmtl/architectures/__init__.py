"""Sharing architectures: how the tasks share the input representation. Each registers by name."""

from . import adversarial, cross_stitch, hierarchical, moe, ple, shared_bottom, single, soft  # noqa: F401  (register)
from .base import ARCHITECTURES, BuildContext, GateRecorder, Sharing

__all__ = ["ARCHITECTURES", "BuildContext", "GateRecorder", "Sharing"]
