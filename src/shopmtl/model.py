"""The multi-task model: inputs → sharing (the architecture) → one head per task → funnels.

A funnel task (`after: parent`, ESMM) has a head that learns p(task | parent); the model outputs the entire-space
probability p(parent) · p(task | parent) as a logit, so every task type's loss, metrics and decoding work on it
unchanged, and a child's probability can never exceed its parent's. Chains and branches compose in order."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .architectures import ARCHITECTURES, BuildContext, GateRecorder
from .config import ExperimentConfig, funnel_order
from .data.preprocess import FIRST, Preprocessor, PretrainedTextProcessor
from .features import InputEncoder
from .features.sparse import WideTerm
from .tasks import Task


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x < 0, accurate on both sides of −log 2."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def funnel_logit(parent_logit: torch.Tensor, conditional_logit: torch.Tensor) -> torch.Tensor:
    """logit(σ(parent) · σ(conditional)), computed in log space."""
    log_p = (F.logsigmoid(parent_logit) + F.logsigmoid(conditional_logit)).clamp(max=-1e-6)
    return log_p - log1mexp(log_p)


def token_ids(features: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """Per token of text feature `name`, an id [B, L] (0 = no token): its vocabulary id, or for a pretrained
    encoder the id of its first word piece."""
    ids = features[name]
    first = features.get(name + FIRST)
    if first is None:
        return ids
    return torch.where(first > 0, ids.gather(1, first), torch.zeros_like(first))


def window_vocab(preprocessor: Preprocessor, feature: str) -> tuple[list[str], int]:
    """The token strings behind `token_ids` of a text feature, and the first id they start at."""
    proc = preprocessor.processors[feature]
    if isinstance(proc, PretrainedTextProcessor):
        tok = proc.cache.tokenizer
        return tok.convert_ids_to_tokens(list(range(len(tok)))), 0
    return list(proc.vocab.tokens), 2


class MultiTaskModel(nn.Module):
    def __init__(self, config: ExperimentConfig, preprocessor: Preprocessor, tasks: dict[str, Task]):
        super().__init__()
        ctx = BuildContext(config, list(tasks), lambda: InputEncoder(config, preprocessor))
        wide = config.model.wide
        self.deep = wide is None or wide.deep
        with warnings.catch_warnings():  # a wide-only model may leave the (unused) deep path no input at all
            if not self.deep:
                warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            self.sharing = ARCHITECTURES.get(config.model.architecture)(ctx)
        # tagging tasks: the text feature whose per-token vectors their head reads, from the encoder on their path
        self.sequence_of = {name: task.text_feature for name, task in tasks.items() if task.text_feature}
        self.window_of = {name: task.text_feature for name, task in tasks.items()
                          if task.text_feature and getattr(task.cfg, "window_features", False)}
        self._inputs = {name: self.sharing.task_inputs(name) for name in self.sequence_of}
        self.heads = nn.ModuleDict({name: self._head(name, task, preprocessor) for name, task in tasks.items()})
        # the wide term: a linear model per task over the sparse features, next to its head (not tagging tasks)
        self.wide = nn.ModuleDict()
        if wide is not None:
            names = wide.features if wide.features is not None else \
                [n for n, f in config.features.items() if f.type == "sparse"]
            sizes = {n: preprocessor.processors[n].size for n in names}
            for name, task in tasks.items():
                if task.text_feature is None and sizes:  # (no sparse feature: only the taggers are fitted first)
                    self.wide[name] = WideTerm(sizes, task.n_outputs)
        self.fitted_first: list[str] = []  # tasks started from a fit of their own (`training/wide.py`)
        self.parents = {name: config.tasks[name].after for name in tasks
                        if getattr(config.tasks[name], "after", None)}
        self.order = [t for t in funnel_order(config.tasks) if t in tasks]

    def _head(self, name: str, task: Task, preprocessor: Preprocessor) -> nn.Module:
        if name in self.sequence_of:
            width = self._inputs[name].sequence_width(self.sequence_of[name])
            vocab, first = window_vocab(preprocessor, self.sequence_of[name]) if name in self.window_of \
                else (None, 2)
            return task.head(self.sharing.out_dims[name], seq_dim=width, vocab=vocab, first_id=first)
        return task.head(self.sharing.out_dims[name])

    @property
    def reads_sequences(self) -> bool:
        """True when some head reads per-token vectors, which reach the input encoder without passing the
        architecture's shared representation."""
        return bool(self.sequence_of)

    @property
    def independent(self) -> bool:
        """True when no parameter serves two tasks (each may keep its own best epoch): the architecture shares
        nothing, or only the per-task wide terms run; and no funnel ties a child to its parent."""
        return (self.sharing.independent or not self.deep) and not self.parents

    def start_from_wide(self, state: dict[str, torch.Tensor], freeze: bool = False) -> None:
        """Load fitted wide weights (`training/wide.py`) and zero the output layer of every head that has a wide
        term, so the model's first outputs are the wide model's and the deep path learns what it leaves; with
        `freeze`, the wide weights then stay fixed."""
        self.wide.load_state_dict(state)
        self.fitted_first += [name for name in self.wide if name not in self.fitted_first]
        for name in self.wide:
            head = self.heads[name]
            if not isinstance(head, nn.Linear):
                raise TypeError(f"tasks.{name}: its head is a {type(head).__name__}, not a linear output layer, "
                                f"so the deep path cannot start at zero on top of the wide term")
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        if freeze:
            self.wide.requires_grad_(False)

    def start_tagger_from_fit(self, name: str, freeze: bool = False) -> None:
        """After a tagger's feature CRF (window term and transitions) is fitted in place, zero its emission layer
        over the deep path's vectors, so the model's first tag scores are the feature CRF's; with `freeze`, the
        fitted part then stays fixed."""
        head = self.heads[name]
        if name not in self.fitted_first:
            self.fitted_first.append(name)
        nn.init.zeros_(head.emit.weight)
        nn.init.zeros_(head.emit.bias)
        if freeze:
            head.window.requires_grad_(False)
            if head.crf is not None:
                head.crf.requires_grad_(False)

    @property
    def recorder(self) -> GateRecorder | None:
        return self.sharing.recorder

    def forward(self, features: dict[str, torch.Tensor], conditional: bool = False) -> dict[str, torch.Tensor]:
        """Per-task outputs; with `conditional`, also `<task>|<parent>`: the funnel heads' own p(task | parent)."""
        raw = self._deep(features) if self.deep else {}
        for name, wide in self.wide.items():
            raw[name] = raw[name] + wide(features) if name in raw else wide(features)
        out: dict[str, torch.Tensor] = {}
        for name in self.order:
            parent = self.parents.get(name)
            out[name] = raw[name] if parent is None else funnel_logit(out[parent], raw[name])
            if conditional and parent is not None:
                out[f"{name}|{parent}"] = raw[name]
        return out

    def _deep(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each head's output over the architecture's representation of its task (the deep path)."""
        reps = self.sharing(features)
        raw = {}
        for name, head in self.heads.items():
            if name in self.sequence_of:
                text = self.sequence_of[name]
                ids = token_ids(features, text) if name in self.window_of else None
                raw[name] = head(reps[name], *self._inputs[name].sequences[text], ids)
            else:
                raw[name] = head(reps[name])
        return raw

    def regularisers(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.sharing.regularisers(masks) if self.deep else {}

    def task_keys(self, task: str) -> list[str]:
        """State-dict keys that belong to one task alone (its head and wide term, and its column where nothing is
        shared)."""
        prefixes = [f"heads.{task}.", f"wide.{task}."] + [f"sharing.{p}" for p in self.sharing.task_prefixes(task)]
        return [k for k in self.state_dict() if k.startswith(tuple(prefixes))]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The shared parameters that train (a frozen pretrained encoder's are left out)."""
        if not self.deep:
            return []
        return [p for p in self.sharing.shared_parameters() if p.requires_grad]
