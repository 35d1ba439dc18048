"""Which inputs drive each task: integrated gradients (Sundararajan et al., 2017) from Captum, per task, at every
feature's input layer (the embedding of a categorical, multi-hot or text feature, the word-piece embeddings of a
pretrained encoder, a numeric feature's value and missing flag), against an all-padding / all-zero baseline (a
row that says nothing). Every path of the model is attributed at once, so the shares add up across shared and
task-specific encoders.

Per task, the explained output is the logit of the predicted class (multi-class, multi-label), the logit
(binary) or the prediction (regression); tagging tasks, whose output is per token, are left out. A feature's
attribution is the sum over its embedding dimensions (and tokens); a text feature's per-token attributions tell
which words move the task."""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..data.preprocess import BUCKET

if TYPE_CHECKING:
    from ..data.batching import Encoded
    from ..data.preprocess import Preprocessor
    from ..model import MultiTaskModel
    from ..tasks import Task

MIN_TOKEN_COUNT = 3
EXPLAINED = {"BinaryTask": "logit", "MulticlassTask": "logit of the predicted class",
             "MultilabelTask": "logit of the top label", "RegressionTask": "prediction, on the task's training scale"}


def attribution_layers(model: MultiTaskModel) -> dict[str, list[nn.Module]]:
    """feature → the modules whose output is that feature's input representation, in every input encoder."""
    from ..features.inputs import InputEncoder
    from ..features.numeric import NumericEncoder
    from ..features.pretrained import PretrainedTextEncoder
    from ..features.sparse import SparseEncoder, WideTerm

    layers: dict[str, list[nn.Module]] = {}

    def add(name: str, layer: nn.Module) -> None:
        found = layers.setdefault(name, [])
        if not any(layer is seen for seen in found):
            found.append(layer)

    for inputs in (m for m in model.modules() if isinstance(m, InputEncoder)):
        for name, enc in inputs.encoders.items():
            if isinstance(enc, PretrainedTextEncoder):
                add(name, enc.taps[name])
            elif isinstance(enc, NumericEncoder):
                add(name, enc.tap)
            elif isinstance(enc, SparseEncoder):
                add(name, enc.tap)
            else:
                add(name, enc.embedding)
    for wide in (m for m in model.modules() if isinstance(m, WideTerm)):
        for name, tap in wide.taps.items():
            add(name, tap)
    return layers


def explainable(tasks: dict[str, Task]) -> list[str]:
    return [name for name, task in tasks.items() if task.text_feature is None]


def _used(model: MultiTaskModel, task: str, layers: list[nn.Module], features: dict[str, torch.Tensor]) -> list[bool]:
    """Which of `layers` the task's output depends on (architectures with a column per task use only theirs)."""
    captured: dict[int, torch.Tensor] = {}

    def hook(k: int):
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            captured[k] = output.detach().float().requires_grad_(True)
            return captured[k]
        return keep

    handles = [layer.register_forward_hook(hook(k)) for k, layer in enumerate(layers)]
    try:
        with torch.enable_grad():
            out = model({k: v[:2] for k, v in features.items()})[task]
            keys = sorted(captured)
            grads = torch.autograd.grad(out.float().sum(), [captured[k] for k in keys], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    used = dict(zip(keys, (g is not None for g in grads), strict=True))
    return [used.get(k, False) for k in range(len(layers))]


def _target(output: torch.Tensor) -> torch.Tensor | None:
    return output.argmax(-1) if output.dim() == 2 and output.shape[-1] > 1 else None


def attribute(model: MultiTaskModel, tasks: dict[str, Task], features: dict[str, torch.Tensor], steps: int = 32,
              chunk: int = 16) -> dict[str, dict[str, Any]]:
    """task → {'features': {feature: attribution tensor shaped like its layer output, summed over the last
    dimension for sequences ([N] or [N, L])}, 'output': explained output [N], 'baseline_output': [N], 'delta':
    completeness error [N]}."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    layers = attribution_layers(model)
    names = [f for f in features if f in layers]
    # a numeric feature's bucket ids go to the all-zero baseline with its value
    names += [k for k in features if k.endswith(BUCKET) and k[: -len(BUCKET)] in layers]
    extra = [k for k in features if k not in names]
    flat, owner = [], []
    for f in names:
        for layer in layers.get(f, []):
            flat.append(layer)
            owner.append(f)
    n = len(next(iter(features.values())))
    out: dict[str, dict[str, Any]] = {}
    for task in explainable(tasks):
        def forward(*args: torch.Tensor, task: str = task) -> torch.Tensor:
            feats = dict(zip(names, args[: len(names)], strict=True))
            feats.update(zip(extra, args[len(names):], strict=True))
            result = model(feats)[task]
            return result.squeeze(-1) if result.dim() == 2 and result.shape[-1] == 1 else result

        used = _used(model, task, flat, features)
        task_layers = [layer for layer, u in zip(flat, used, strict=True) if u]
        task_owner = [f for f, u in zip(owner, used, strict=True) if u]
        with warnings.catch_warnings():  # the layers are input embeddings: none depends on another
            warnings.filterwarnings("ignore", message="Multiple layers provided")
            lig = LayerIntegratedGradients(forward, task_layers if len(task_layers) > 1 else task_layers[0])
        per_feature: dict[str, list[torch.Tensor]] = defaultdict(list)
        outputs, baselines, deltas = [], [], []
        for start in range(0, n, chunk):
            part = {k: v[start: start + chunk] for k, v in features.items()}
            inputs = tuple(part[f] for f in names)
            base = tuple(torch.zeros_like(x) for x in inputs)
            more = tuple(part[k] for k in extra)
            with torch.no_grad():
                value = forward(*inputs, *more)
                zero = forward(*base, *more)
            target = _target(value)
            attrs, delta = lig.attribute(inputs, baselines=base, target=target, additional_forward_args=more or None,
                                         n_steps=steps, return_convergence_delta=True)
            attrs = attrs if isinstance(attrs, list) else [attrs]
            summed: dict[str, torch.Tensor] = {}
            for f, a in zip(task_owner, attrs, strict=True):
                a = a.detach().float()
                a = a.sum(-1) if a.dim() == 3 else a.reshape(a.shape[0], -1).sum(-1)
                summed[f] = summed[f] + a if f in summed else a
            for f, a in summed.items():
                per_feature[f].append(a)
            pick = (lambda t, tg=target: t.gather(-1, tg.unsqueeze(-1)).squeeze(-1)) if target is not None \
                else (lambda t: t)
            outputs.append(pick(value).float())
            baselines.append(pick(zero).float())
            deltas.append(delta.detach().float())
        out[task] = {"features": {f: _cat_padded(v) for f, v in per_feature.items()},
                     "output": torch.cat(outputs), "baseline_output": torch.cat(baselines),
                     "delta": torch.cat(deltas)}
    return out


def _cat_padded(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate per-chunk attributions; token sequences of different widths are padded with zeros."""
    if parts[0].dim() == 1:
        return torch.cat(parts)
    width = max(p.shape[1] for p in parts)
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])


def token_strings(preprocessor: Preprocessor, feature: str, ids: np.ndarray) -> list[list[str]]:
    """The token (or word piece) each id of a text feature stands for; '' for padding."""
    text = preprocessor.config.model.text
    if text.encoder == "pretrained":
        from ..features.pretrained import load_tokenizer

        tok = load_tokenizer(text.pretrained)
        return [[t if i else "" for i, t in zip(row, tok.convert_ids_to_tokens(row.tolist()), strict=True)]
                for row in ids]
    vocab = preprocessor.processors[feature].vocab.tokens
    lookup = lambda i: "" if i == 0 else ("<unk>" if i == 1 else vocab[i - 2])  # noqa: E731
    return [[lookup(int(i)) for i in row] for row in ids]


def text_features(preprocessor: Preprocessor) -> list[str]:
    return [n for n, f in preprocessor.config.features.items() if f.type == "text"]


def summarise(model: MultiTaskModel, tasks: dict[str, Task], preprocessor: Preprocessor, enc: Encoded,
              rows: int, steps: int, seed: int = 0) -> dict[str, Any] | None:
    """Explanations of up to `rows` rows of a split: per task each feature's share of mean |attribution|, and
    the tokens with the largest mean attribution (seen at least 3 times)."""
    if rows <= 0 or not explainable(tasks) or not len(enc):
        return None
    from ..data.batching import batches

    idx = np.sort(np.random.default_rng(seed).permutation(len(enc))[:rows])
    batch = next(batches(enc.take(idx), len(idx), device=next(model.parameters()).device))
    features = batch["features"]
    result = attribute(model, tasks, features, steps)
    texts = {f: token_strings(preprocessor, f, features[f].cpu().numpy())
             for f in text_features(preprocessor) if f in features}
    summary: dict[str, Any] = {"rows": len(idx), "steps": steps, "tasks": {},
                               "skipped": [f"{t} (tagging: explained per token by its own tags)"
                                           for t in tasks if t not in explainable(tasks)]}
    for task, spec in result.items():
        strength = {f: float(a.abs().reshape(a.shape[0], -1).sum(-1).mean()) for f, a in spec["features"].items()}
        total = sum(strength.values()) or 1.0
        tokens: dict[str, list[float]] = defaultdict(list)
        for f, words in texts.items():
            if f not in spec["features"]:  # a feature this task's output does not read (e.g. a wide-only model)
                continue
            a = spec["features"][f].cpu().numpy()
            for r, row in enumerate(words):
                for j, w in enumerate(row[: a.shape[1]]):
                    if w:
                        tokens[f"{w}" if len(texts) == 1 else f"{f}:{w}"].append(float(a[r, j]))
        top = sorted(((w, float(np.mean(v))) for w, v in tokens.items() if len(v) >= MIN_TOKEN_COUNT),
                     key=lambda wv: -abs(wv[1]))[:10]
        gap = (spec["output"] - spec["baseline_output"]).abs()
        summary["tasks"][task] = {
            "feature_share": {f: s / total for f, s in strength.items()},
            "top_tokens": top,
            "completeness_error": float((spec["delta"].abs() / gap.clamp(min=1e-6)).median()),
        }
    return summary


def explain_row(model: MultiTaskModel, tasks: dict[str, Task], preprocessor: Preprocessor, enc: Encoded,
                steps: int = 64) -> dict[str, Any]:
    """Attributions of one encoded row per task: each feature's signed attribution, and per text feature the
    tokens with theirs."""
    from ..data.batching import batches

    batch = next(batches(enc, 1, device=next(model.parameters()).device))
    features = batch["features"]
    result = attribute(model, tasks, features, steps)
    texts = {f: token_strings(preprocessor, f, features[f].cpu().numpy())[0]
             for f in text_features(preprocessor) if f in features}
    out: dict[str, Any] = {}
    for task, spec in result.items():
        feats = {f: float(a.reshape(1, -1).sum()) for f, a in spec["features"].items()}
        tokens = {f: [(w, float(x)) for w, x in zip(words, spec["features"][f][0].tolist(), strict=False) if w]
                  for f, words in texts.items()}
        out[task] = {"explains": EXPLAINED.get(type(tasks[task]).__name__, "output"),
                     "output": float(spec["output"][0]), "baseline_output": float(spec["baseline_output"][0]),
                     "features": dict(sorted(feats.items(), key=lambda kv: -abs(kv[1]))), "tokens": tokens}
    return out


def format_row(explained: dict[str, Any], predictions: dict[str, Any]) -> str:
    lines = []
    for task, spec in explained.items():
        lines.append(f"{task}: prediction {predictions.get(task, '?')}; explained: {spec['explains']} "
                     f"{spec['output']:+.4f} (all-padding input: {spec['baseline_output']:+.4f})")
        for f, v in spec["features"].items():
            lines.append(f"  {f:<28}{v:+.4f}")
        for f, words in spec["tokens"].items():
            if words:
                shown = sorted(words, key=lambda wv: -abs(wv[1]))[:12]
                lines.append(f"  tokens of {f}: " + ", ".join(f"{w} {x:+.3f}" for w, x in shown))
    return "\n".join(lines)
