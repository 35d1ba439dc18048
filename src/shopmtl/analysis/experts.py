"""Expert use of gated architectures (MMoE, OMoE, PLE): how each gate spreads its weight over the experts on
validation data, and the two signs of expert collapse — one expert taking almost all of a gate's weight, or two
experts whose outputs are nearly the same (so the mixture has fewer experts than it pays for)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..data.batching import Encoded
from ..tasks import Task

DOMINANCE = 0.9  # a gate giving one expert more than this share of its weight: collapsed onto it
SIMILARITY = 0.95  # two experts whose centred outputs have a higher cosine similarity: near-identical


@contextmanager
def recording(model: torch.nn.Module) -> Iterator[dict[str, Any]]:
    """Within the block, a gated model records its routing; afterwards the dict holds the summary (empty for
    architectures without gates)."""
    summary: dict[str, Any] = {}
    recorder = getattr(model, "recorder", None)
    if recorder is None:
        yield summary
        return
    recorder.reset()
    recorder.active = True
    try:
        yield summary
    finally:
        recorder.active = False
        summary.update(recorder.summary())
        recorder.reset()


def gate_columns(summary: dict[str, Any]) -> dict[str, float]:
    """Per-epoch history columns `gate.<gate>.<expert>` (mean weight on validation data)."""
    return {f"gate.{g}.{e}": w for g, spec in summary.get("gates", {}).items()
            for e, w in zip(spec["experts"], spec["weights"], strict=True)}


def collapse_flags(summary: dict[str, Any], dominance: float = DOMINANCE,
                   similarity: float = SIMILARITY) -> list[str]:
    flags = []
    for gate, spec in summary.get("gates", {}).items():
        weights = spec["weights"]
        top = max(range(len(weights)), key=weights.__getitem__)
        if len(weights) > 1 and weights[top] > dominance:
            flags.append(f"gate `{gate}` gives {weights[top]:.0%} of its weight to expert {spec['experts'][top]}")
    for group, spec in summary.get("similarity", {}).items():
        names, matrix = spec["experts"], spec["matrix"]
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                if matrix[i][j] > similarity:
                    flags.append(f"experts {names[i]} and {names[j]} ({group}) give near-identical outputs "
                                 f"(centred cosine similarity {matrix[i][j]:.3f})")
    return flags


def expert_use(model: torch.nn.Module, tasks: dict[str, Task], enc: Encoded, batch_size: int,
               device: torch.device) -> dict[str, Any] | None:
    """Routing summary and collapse flags of a gated model over `enc` (None for architectures without gates)."""
    if getattr(model, "recorder", None) is None:
        return None
    from ..training.evaluate import predict

    with recording(model) as summary:
        predict(model, tasks, enc, batch_size, device)
    return {**summary, "flags": collapse_flags(summary)}


def format_expert_use(use: dict[str, Any]) -> str:
    """A plain-text table: one line per gate, its mean weight per expert; then the flags."""
    lines = []
    for gate, spec in use["gates"].items():
        parts = " ".join(f"{e}={w:.2f}" for e, w in zip(spec["experts"], spec["weights"], strict=True))
        lines.append(f"  gate {gate:<20} {parts}")
    lines += [f"  collapse: {f}" for f in use["flags"]] or ["  no expert collapse flagged"]
    return "\n".join(lines)
