"""The optimiser of a run: AdamW over the dense parameters, in groups (the model; a fine-tuned pretrained
encoder at its own learning rate; the wide biases), and Adam with lazy updates (`SparseAdam`) over the wide
term's weight tables, whose gradients are sparse: a step touches only the rows of the tokens in the batch, and
their decoupled weight decay is applied to those rows. A learning-rate schedule (linear warm-up, then constant,
linear or cosine decay) scales every group."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig


def _sparse_tables(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules()
            if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse and m.weight.requires_grad]


def _encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    from ..features.pretrained import PretrainedTextEncoder

    seen: dict[int, nn.Parameter] = {}
    for m in model.modules():
        if isinstance(m, PretrainedTextEncoder):
            for p in m.model.parameters():
                if p.requires_grad:
                    seen[id(p)] = p
    return list(seen.values())


class Optimizer:
    def __init__(self, model: nn.Module, extra: list[nn.Parameter], train: TrainConfig, model_cfg: ModelConfig,
                 total_steps: int):
        sparse = _sparse_tables(model)
        encoder = _encoder_parameters(model) if model_cfg.text.lr else []
        wide_dense = [p for name, p in model.named_parameters() if name.startswith("wide.") and p.requires_grad
                      and not any(p is s for s in sparse)]
        taken = {id(p) for p in sparse + encoder + wide_dense}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken] + list(extra)
        wide = model_cfg.wide
        wide_lr = (wide.lr if wide and wide.lr else train.lr)
        groups: list[dict[str, Any]] = [{"params": rest, "lr": train.lr, "weight_decay": train.weight_decay}]
        if encoder:
            groups.append({"params": encoder, "lr": model_cfg.text.lr, "weight_decay": train.weight_decay})
        if wide_dense:
            groups.append({"params": wide_dense, "lr": wide_lr, "weight_decay": 0.0})
        self.dense = torch.optim.AdamW(groups, lr=train.lr, weight_decay=train.weight_decay)
        # one group per wide table, with its task's own lr and weight decay where `model.wide.tasks` sets them
        owner = {id(m.table.weight): name.split(".")[1] for name, m in model.named_modules()
                 if name.startswith("wide.") and hasattr(m, "table")}
        sparse_groups = []
        for p in sparse:
            own = (wide.tasks.get(owner.get(id(p), "")) if wide else None)
            sparse_groups.append({"params": [p], "lr": own.lr if own and own.lr else wide_lr,
                                  "weight_decay": own.weight_decay if own and own.weight_decay is not None
                                  else (wide.weight_decay if wide else 0.0)})
        self.sparse = torch.optim.SparseAdam(sparse_groups, lr=wide_lr) if sparse else None
        self.optimizers = [o for o in (self.dense, self.sparse) if o is not None]
        self.base_lrs = [[g["lr"] for g in o.param_groups] for o in self.optimizers]
        self.total = max(total_steps, 1)
        self.warmup = int(train.warmup * self.total) if train.warmup < 1 else int(train.warmup)
        self.schedule = train.schedule
        self.steps = 0
        self.set_scale(self.factor(0))

    # ---- what the training loop and the monitors read
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The dense groups (the first is the model's own: its lr is what the affinity look-ahead steps by)."""
        return self.dense.param_groups

    @property
    def state(self) -> Any:
        return self.dense.state

    def dense_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.dense.param_groups for p in g["params"]]

    # ---- stepping
    def zero_grad(self) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)

    def clip(self, max_norm: float) -> None:
        """Clip the dense gradients' global norm (the wide tables' sparse rows are left as they are)."""
        torch.nn.utils.clip_grad_norm_(self.dense_parameters(), max_norm)

    def step(self, scaler: Any = None) -> None:
        for o in self.optimizers:
            if scaler is not None:
                scaler.step(o)
            else:
                o.step()
        if self.sparse is not None:
            with torch.no_grad():
                for group in self.sparse.param_groups:
                    if not group.get("weight_decay"):
                        continue
                    shrink = 1.0 - group["lr"] * group["weight_decay"]
                    for p in group["params"]:
                        if p.grad is not None:
                            rows = p.grad.coalesce().indices()[0]
                            p.index_copy_(0, rows, p.index_select(0, rows) * shrink)
        self.steps += 1
        self.set_scale(self.factor(self.steps))

    def unscale(self, scaler: Any) -> None:
        for o in self.optimizers:
            scaler.unscale_(o)

    # ---- learning-rate schedule
    def factor(self, step: int) -> float:
        """The share of every group's learning rate at `step`: linear warm-up, then the schedule."""
        if self.warmup and step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def set_scale(self, factor: float) -> None:
        for o, bases in zip(self.optimizers, self.base_lrs, strict=True):
            for g, base in zip(o.param_groups, bases, strict=True):
                g["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers], "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)
        self.steps = state["steps"]
        self.set_scale(self.factor(self.steps))
