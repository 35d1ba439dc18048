"""Task balancing: how per-task losses (or their gradients) become one update. Each registers by name."""

from . import (  # noqa: F401  (register)
    cagrad,
    dwa,
    equal,
    famo,
    gradnorm,
    mgda,
    nash_mtl,
    pcgrad,
    rlw,
    static,
    uncertainty,
)
from .base import BALANCERS, Balancer, GradientBalancer

__all__ = ["BALANCERS", "Balancer", "GradientBalancer"]
