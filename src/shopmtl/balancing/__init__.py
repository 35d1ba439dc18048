"""Task balancing: how per-task losses (or their gradients) become one update. Each registers by name."""

from . import equal, static  # noqa: F401,E402  (register)
from .base import BALANCERS, Balancer

__all__ = ["BALANCERS", "Balancer"]
