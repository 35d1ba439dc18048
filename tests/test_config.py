"""The experiment file: validation names the field and the fix; overrides; components checked up front."""

from __future__ import annotations

import pytest
import yaml

from shopmtl.config import apply_overrides, load_config, parse_override
from shopmtl.errors import ConfigError

from .conftest import synthetic_config


def write(tmp_path, raw) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def base() -> dict:
    return {"name": "x", "data": {"source": {"format": "csv", "path": "d.csv"}},
            "features": {"a": {"type": "numeric"}}, "tasks": {"y": {"type": "binary"}}}


def test_typo_in_a_field_names_the_closest_field(tmp_path):
    raw = base()
    raw["train"] = {"epoch": 3}
    with pytest.raises(ConfigError, match=r"train: unknown field `epoch`; did you mean `epochs`\?"):
        load_config(write(tmp_path, raw))


def test_wrong_task_type_lists_the_known_types(tmp_path):
    raw = base()
    raw["tasks"]["y"]["type"] = "binaryy"
    with pytest.raises(ConfigError, match=r"tasks\.y: `type: binaryy` is not known; expected one of .*'binary'"):
        load_config(write(tmp_path, raw))


def test_option_of_another_feature_kind_is_rejected_with_its_field(tmp_path):
    raw = base()
    raw["features"]["a"]["max_len"] = 10
    with pytest.raises(ConfigError, match=r"features\.a: unknown field `max_len`"):
        load_config(write(tmp_path, raw))


def test_unknown_architecture_and_balancer_are_named(tmp_path):
    raw = base()
    raw["model"] = {"architecture": "shared_botom"}
    with pytest.raises(ConfigError, match=r"model.architecture: unknown architecture `shared_botom`; did you mean `shared_bottom`"):
        load_config(write(tmp_path, raw))
    raw = base()
    raw["balance"] = {"method": "equall"}
    with pytest.raises(ConfigError, match=r"balance.method: unknown balancer `equall`; did you mean `equal`"):
        load_config(write(tmp_path, raw))


def test_unknown_architecture_option_is_rejected(tmp_path):
    raw = base()
    raw["model"] = {"architecture": "shared_bottom", "experts": 4}
    with pytest.raises(ConfigError, match=r"model.experts: not an option of architecture `shared_bottom`"):
        load_config(write(tmp_path, raw))


def test_unknown_reader_format_is_named(tmp_path):
    raw = base()
    raw["data"]["source"]["format"] = "bigbasket"
    with pytest.raises(ConfigError, match=r"unknown reader `bigbasket`; did you mean `bigbasket_products`"):
        load_config(write(tmp_path, raw))


def test_task_name_reserved_by_torch_is_refused_with_the_fix(tmp_path):
    raw = base()
    raw["tasks"] = {"type": {"type": "multiclass"}}
    with pytest.raises(ConfigError, match=r"tasks.type: `type` is reserved .* `column: type`"):
        load_config(write(tmp_path, raw))


def test_time_split_needs_a_column(tmp_path):
    raw = base()
    raw["data"]["split"] = {"by": "time"}
    with pytest.raises(ConfigError, match=r"data.split: .*split by `time` needs `column:`"):
        load_config(write(tmp_path, raw))


def test_static_weights_for_an_unknown_task_are_named(tmp_path):
    raw = base()
    raw["balance"] = {"method": "static", "weights": {"yy": 2.0}}
    with pytest.raises(ConfigError, match=r"balance.weights names unknown task `yy`; did you mean `y`"):
        load_config(write(tmp_path, raw))


def test_set_overrides_any_field_and_parses_values_as_yaml(tmp_path, synthetic_csv):
    path = synthetic_config(tmp_path / "s.yaml", synthetic_csv)
    cfg = load_config(path, ["train.epochs=1", "model.architecture=single", "model.bottom_layers=[4, 2]"])
    assert cfg.train.epochs == 1
    assert cfg.model.architecture == "single"
    assert cfg.model.bottom_layers == [4, 2]
    assert load_config(path, ["train.lr=1e-3"]).train.lr == pytest.approx(0.001)
    assert parse_override("train.early_stopping=null") == (["train", "early_stopping"], None)


def test_set_without_equals_sign_explains_the_form():
    with pytest.raises(ConfigError, match=r"expected key=value"):
        apply_overrides({}, ["train.epochs"])


def test_set_typo_is_caught_by_validation(tmp_path, synthetic_csv):
    path = synthetic_config(tmp_path / "s.yaml", synthetic_csv)
    with pytest.raises(ConfigError, match=r"train: unknown field `epoches`; did you mean `epochs`"):
        load_config(path, ["train.epoches=1"])


def test_missing_config_file_and_bad_yaml_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
