"""Equal weighting: the plain sum of task losses."""

from __future__ import annotations

from .base import BALANCERS, Balancer


@BALANCERS.register("equal", "sum of task losses, every weight 1")
class Equal(Balancer):
    pass
