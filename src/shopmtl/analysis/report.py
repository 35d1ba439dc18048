"""The run report: a self-contained HTML page (metrics per task and split, learning curves as inline PNG)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run import Run


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4f}"
    return "—" if v is None else html.escape(str(v))


def learning_curves_png(history: list[dict[str, float]], tasks: dict[str, Any]) -> bytes | None:
    """One panel per task: training loss, validation loss and the primary validation metric per epoch."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(h["epoch"]) for h in history]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, (name, task) in zip(axes[0], tasks.items(), strict=True):
        ax.plot(epochs, [h.get(f"train.{name}.loss") for h in history], "o-", label="train loss")
        ax.plot(epochs, [h.get(f"valid.{name}.loss") for h in history], "s-", label="valid loss")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        twin = ax.twinx()
        twin.plot(epochs, [h.get(f"valid.{name}.{task.primary}") for h in history], "^--", color="tab:green",
                  label=f"valid {task.primary}")
        twin.set_ylabel(task.primary)
        ax.legend(loc="upper left", fontsize=7)
        twin.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def dynamics_png(history: list[dict[str, float]]) -> bytes | None:
    """Task weights per epoch, and the mean cosine of each pair of task gradients on the shared parameters."""
    if not history:
        return None
    weights = sorted({k for h in history for k in h if k.startswith("weight.")})
    pairs = sorted({k for h in history for k in h if k.startswith("conflict.") and k != "conflict.negative_share"})
    panels = [("task weights", weights, "weight"), ("gradient conflict (cosine)", pairs, "cosine")]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(h["epoch"]) for h in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.2), squeeze=False)
    for ax, (title, keys, ylabel) in zip(axes[0], panels, strict=True):
        for k in keys:
            ax.plot(epochs, [h.get(k) for h in history], "o-", label=k.split(".", 1)[1].replace(".", " · "))
        if ylabel == "cosine":
            ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _notes_html(metrics: dict[str, Any]) -> list[str]:
    """Funnel data checks, architecture notes and expert use (gate weight per expert, collapse flags)."""
    parts = []
    funnels = metrics.get("funnels")
    if funnels:
        rows = [[t, f["after"], f["positives"], f["outside_parent"], f"{f['share']:.1%}"] for t, f in funnels.items()]
        parts.append("<h2>funnels (training split)</h2>" + _table(
            ["task", "after", "positives", "positives with a negative parent", "share"], rows))
    for note in metrics.get("notes", []):
        parts.append(f"<p><b>note:</b> {html.escape(note)}</p>")
    use = metrics.get("expert_use")
    if use:
        parts.append("<h2>expert use (validation split)</h2><p>mean gate weight per expert</p>")
        for gate, spec in use["gates"].items():
            parts.append(f"<h3>gate {html.escape(gate)}</h3>" + _table(spec["experts"], [spec["weights"]]))
        flags = use.get("flags") or ["no expert collapse flagged"]
        parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in flags) + "</ul>")
    return parts


def write_report(run: Run, path: Path) -> None:
    parts = [f"<h1>shopmtl run: {html.escape(run.config.name)}</h1>",
             f"<p>architecture <b>{html.escape(run.config.model.architecture)}</b>, balancer "
             f"<b>{html.escape(run.config.balance.method)}</b>, rows {html.escape(str(run.metrics.get('rows')))}, "
             f"training {run.metrics.get('train_seconds', '—')} s</p>"]
    for split in ("valid", "test"):
        per_task = run.metrics.get(split)
        if not per_task:
            continue
        parts.append(f"<h2>{split} metrics</h2><table><tr><th>task</th><th>metric</th><th>value</th></tr>")
        for task, values in per_task.items():
            for k, v in values.items():
                parts.append(f"<tr><td>{html.escape(task)}</td><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>")
        parts.append("</table>")
    parts += _notes_html(run.metrics)
    png = learning_curves_png(run.history, run.tasks)
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<h2>learning curves</h2><img alt="learning curves" src="data:image/png;base64,{data}">')
    png = dynamics_png(run.history)
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append("<h2>task weights and gradient conflict</h2><p>mean task weight per epoch, and the mean cosine "
                     "similarity of each pair of task gradients on the shared parameters (below 0: conflict)</p>"
                     f'<img alt="task weights and gradient conflict" src="data:image/png;base64,{data}">')
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run.config.name)}</title>" \
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    path.write_text(page, encoding="utf-8")
