"""Sharing architectures: how the tasks share the input representation. Each registers by name."""

from . import shared_bottom, single  # noqa: F401,E402  (register)
from .base import ARCHITECTURES, BuildContext, Sharing

__all__ = ["ARCHITECTURES", "BuildContext", "Sharing"]
