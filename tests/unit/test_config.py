from pathlib import Path

import pytest
import yaml

from housing.config import FEATURES, load_params
from housing.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_load_into_typed_config():
    params = load_params(ROOT / "params.yaml")
    assert params.data.features == FEATURES
    assert params.validate_.columns["MedInc"].max == 20.0
    assert params.evaluate.gates.r2_min == 0.75
    assert params.register_.promote.metric == "mae"
    assert params.drift.threshold == 0.3


def test_unknown_key_is_rejected_with_its_full_path(tmp_path, raw_params):
    raw_params["train"]["hgb"]["learnig_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"train\.hgb\.learnig_rate: unknown key"):
        load_params(_write(tmp_path, raw_params))


def test_unknown_section_is_rejected(tmp_path, raw_params):
    raw_params["trian"] = {}
    with pytest.raises(ConfigError, match=r"trian: unknown key"):
        load_params(_write(tmp_path, raw_params))


def test_invalid_value_names_key_and_rule(tmp_path, raw_params):
    raw_params["split"]["test_size"] = 1.5
    with pytest.raises(ConfigError, match=r"split\.test_size: Input should be less than 1"):
        load_params(_write(tmp_path, raw_params))


def test_range_rule_with_min_above_max_is_rejected(tmp_path, raw_params):
    raw_params["validate"]["columns"]["MedInc"] = {"min": 5, "max": 1}
    with pytest.raises(ConfigError, match=r"validate\.columns\.MedInc.*min \(5.0\) must not exceed max"):
        load_params(_write(tmp_path, raw_params))


def test_every_feature_needs_a_validation_rule(tmp_path, raw_params):
    del raw_params["validate"]["columns"]["Latitude"]
    with pytest.raises(ConfigError, match=r"no rule for feature\(s\) \['Latitude'\]"):
        load_params(_write(tmp_path, raw_params))


def test_drift_override_must_name_a_feature(tmp_path, raw_params):
    raw_params["drift"]["tests"] = {"Income": "psi"}
    with pytest.raises(ConfigError, match=r"unknown feature\(s\) \['Income'\]"):
        load_params(_write(tmp_path, raw_params))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(_write(tmp_path, "train: [unclosed"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_params(_write(tmp_path, "- a\n- b\n"))
