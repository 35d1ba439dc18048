"""The balancer interface: per-task losses in, one backward pass out, the task weights it used reported.

Two families share it. Loss weighting (`equal`, `static`, `uncertainty`, `dwa`, `rlw`, `gradnorm`) turns the losses
into one weighted sum. Gradient methods (`pcgrad`, `cagrad`, `mgda`, `nash_mtl`) subclass `GradientBalancer`: they
see the per-task gradients of what the tasks share and replace their sum by a combined direction.

Per-task gradients are taken where the architecture allows on its shared **representation** (the activation
every task's path crosses, e.g. the shared bottom's output): T cheap backward passes through the towers, then the
full backward runs once with a hook that swaps the representation's gradient for the combined one. Otherwise on the
shared **parameters**: T backward passes through the shared part, one full backward, and the shared parameters'
gradients corrected to the combined direction. Task-specific parameters always get their own task's gradient, and
the architecture's regularisers (`extra`) are added as they are. One forward pass, one graph, in both cases.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..config import BalanceConfig, ExperimentConfig
from ..registry import NoOptions, Registry, parse_options

log = logging.getLogger("shopmtl")


class Balancer:
    """Combines task losses. Subclasses override `weights` (loss weighting) or `backward` (gradient methods)."""

    Options: ClassVar[type[BaseModel]] = NoOptions  # the extra `balance:` options it accepts (typed)

    def __init__(self, tasks: list[str], config: ExperimentConfig, model: nn.Module):
        self.tasks = tasks
        self.config = config
        self.model = model
        self.opts: Any = self.Options.model_validate(config.balance.options)
        self.shared = [p for p in model.shared_parameters() if p.requires_grad]
        self.last_gradients: torch.Tensor | None = None  # per-task gradients of this step's shared parameters

    @classmethod
    def check_options(cls, options: dict[str, Any], config: ExperimentConfig) -> BaseModel:
        return parse_options(options, cls.Options, "balance", f"balancer `{config.balance.method}`",
                             set(BalanceConfig.model_fields))

    def parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the balancer itself (optimised with the model)."""
        return []

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return {t: 1.0 for t in losses}

    def backward(self, losses: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> dict[str, float]:
        """Back-propagate the combined loss; return the weight each task got. `extra`: the architecture's
        regularisers (soft-sharing penalty, adversarial terms), added as they are, never re-weighted."""
        w = self.weights(losses)
        total = sum(w[t] * loss for t, loss in losses.items())
        _backward(total, extra)
        return w

    def after_step(self, recompute: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Called after the optimiser step; `recompute` gives this batch's losses again (no gradient)."""

    def on_epoch_end(self, mean_losses: dict[str, float]) -> None:
        """Called after each epoch with the mean training loss per task."""


def _backward(total: torch.Tensor, extra: torch.Tensor | None) -> None:
    (total + extra if extra is not None else total).backward()


def task_gradients(losses: list[torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
    """(tasks, n) matrix: row t is the flattened gradient of losses[t] w.r.t. `inputs` (zeros where unused)."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1)
                               for g, x in zip(grads, inputs, strict=True)]))
    return torch.stack(rows)


def add_to_grads(params: list[nn.Parameter], flat: torch.Tensor) -> None:
    """Add a flat vector to the parameters' `.grad`, slice by slice."""
    offset = 0
    for p in params:
        n = p.numel()
        piece = flat[offset: offset + n].view_as(p)
        p.grad = piece.clone() if p.grad is None else p.grad + piece
        offset += n


class GradientOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grad_on: Literal["auto", "representation", "parameters"] = Field(
        "auto", description="where per-task gradients are taken: the shared representation (cheap; auto where "
                            "the architecture has one) or the shared parameters")


class GradientBalancer(Balancer, ABC):
    """Per-task gradients of the shared part → `combine` → one direction; see the module docstring."""

    Options: ClassVar[type[BaseModel]] = GradientOptions
    representation_ok: ClassVar[bool] = True  # False: the method needs parameter gradients

    def __init__(self, tasks: list[str], config: ExperimentConfig, model: nn.Module):
        super().__init__(tasks, config, model)
        # tagging heads read per-token vectors past the representation: then only parameter gradients are whole
        has_rep = getattr(model.sharing, "has_representation", False) and not getattr(model, "reads_sequences", False)
        choice = self.opts.grad_on
        if choice == "representation" and not has_rep:
            log.warning("balance.grad_on=representation: architecture `%s` exposes no shared representation; "
                        "using the shared parameters", config.model.architecture)
        self.on_representation = has_rep and self.representation_ok and choice in ("auto", "representation")
        if not self.on_representation and not self.shared:
            log.warning("balance.method=%s: architecture `%s` shares no parameter, so there is no gradient to "
                        "combine; the task losses are summed", config.balance.method, config.model.architecture)

    @abstractmethod
    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tasks, n) gradients and the task losses → (combined direction (n,), per-task weights (tasks,))."""

    def backward(self, losses: dict[str, torch.Tensor], extra: torch.Tensor | None = None) -> dict[str, float]:
        names = list(losses)
        values = [losses[t] for t in names]
        total = sum(values)
        loss_vec = torch.stack([v.detach().float() for v in values])
        if self.on_representation:
            rep = self.model.sharing.representation
            grads = task_gradients(values, [rep])
            active = grads.norm(dim=1) > 0
            direction, w = self._combine_active(grads, loss_vec, active)
            correction = (direction - grads.sum(0)).view_as(rep)
            handle = rep.register_hook(lambda g: g + correction)
            try:
                _backward(total, extra)
            finally:
                handle.remove()
        elif self.shared:
            grads = task_gradients(values, self.shared)
            self.last_gradients = grads
            active = grads.norm(dim=1) > 0
            direction, w = self._combine_active(grads, loss_vec, active)
            _backward(total, extra)
            add_to_grads(self.shared, direction - grads.sum(0))
        else:
            _backward(total, extra)
            w = torch.ones(len(names))
        return {t: float(w[i]) for i, t in enumerate(names)}

    def _combine_active(self, grads: torch.Tensor, losses: torch.Tensor,
                        active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tasks without a label in the batch (a zero gradient) stay out of the combination."""
        w = torch.zeros(len(grads))
        if int(active.sum()) == 0:
            return torch.zeros_like(grads[0]), w
        direction, w_active = self.combine(grads[active].float(), losses[active])
        w[active.cpu()] = w_active.detach().cpu().float()
        return direction.to(grads.dtype), w


BALANCERS: Registry[type[Balancer]] = Registry("balancer", "balance.method")
