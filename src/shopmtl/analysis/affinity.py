"""Task groupings from inter-task affinity (training/affinity.py): which tasks to train together.

A group's score is, for each task in it, the mean affinity onto that task from the group's other tasks, summed
over its tasks (a task alone scores 0), as in Fifty et al. (2021). The best split into k groups for each k is
found by trying every partition (up to 8 tasks; beyond that, by greedy merging), and the suggested grouping is the
best over all k — tasks that help each other end up together, tasks that hurt each other apart."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

EXHAUSTIVE_MAX = 8


def group_score(groups: list[list[str]], affinity: dict[str, dict[str, float | None]]) -> float:
    total = 0.0
    for group in groups:
        for j in group:
            onto = [affinity[i][j] for i in group if i != j and affinity[i][j] is not None]
            total += sum(onto) / len(onto) if onto else 0.0
    return total


def partitions(items: list[str]) -> Iterator[list[list[str]]]:
    """Every partition of `items` into non-empty groups."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in partitions(rest):
        yield [[first], *part]
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1:]]


def _greedy(tasks: list[str], affinity: dict[str, dict[str, float | None]]) -> dict[int, list[list[str]]]:
    """Agglomerative: from singletons, merge the two groups whose merger adds most; every k along the way."""
    groups = [[t] for t in tasks]
    best = {len(groups): [g[:] for g in groups]}
    while len(groups) > 1:
        a, b = max(((a, b) for a in range(len(groups)) for b in range(a + 1, len(groups))),
                   key=lambda ab: group_score([groups[ab[0]] + groups[ab[1]]], affinity)
                   - group_score([groups[ab[0]], groups[ab[1]]], affinity))
        groups = [g for k, g in enumerate(groups) if k not in (a, b)] + [groups[a] + groups[b]]
        best[len(groups)] = [g[:] for g in groups]
    return best


def suggest_groups(affinity: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """{'groups': the suggested partition, 'score': its score, 'by_count': {k: best partition into k groups}}."""
    tasks = list(affinity)
    by_count: dict[int, tuple[float, list[list[str]]]] = {}
    if len(tasks) <= EXHAUSTIVE_MAX:
        for part in partitions(tasks):
            score = group_score(part, affinity)
            k = len(part)
            if k not in by_count or score > by_count[k][0]:
                by_count[k] = (score, part)
    else:
        by_count = {k: (group_score(p, affinity), p) for k, p in _greedy(tasks, affinity).items()}
    # the best overall; on a tie (within rounding), fewer groups: one model serves more tasks
    best_k = min(by_count, key=lambda k: (-round(by_count[k][0], 12), k))
    return {"groups": by_count[best_k][1], "score": by_count[best_k][0],
            "by_count": {str(k): {"groups": p, "score": s} for k, (s, p) in sorted(by_count.items())},
            "method": "exhaustive" if len(tasks) <= EXHAUSTIVE_MAX else "greedy"}


def format_groups(groups: dict[str, Any]) -> str:
    lines = ["suggested task groups (by look-ahead affinity): "
             + " | ".join(" + ".join(g) for g in groups["groups"]) + f"  (score {groups['score']:+.2e})"]
    for k, spec in groups["by_count"].items():
        score = spec["score"]
        lines.append(f"  {k} group(s): " + " | ".join(" + ".join(g) for g in spec["groups"])
                     + ("" if math.isnan(score) else f"  ({score:+.2e})"))
    return "\n".join(lines)
