"""The pipeline's section parameters: defaults from params.yaml, validated by housing.config.Params."""

from __future__ import annotations

import pytest
import yaml
from kfp_support import ROOT

from housing.config import Params
from housing.errors import ConfigError
from housing.kfp.params import STAGE_SECTIONS, apply_overrides, params_from_sections, section_defaults


def test_sections_are_what_dvc_stages_read():
    """Every params.yaml key a dvc.yaml stage lists is in a pipeline parameter; no parameter goes unread."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = {key.split(".")[0] for stage in stages.values() for key in stage.get("params", [])}
    assert listed == set(STAGE_SECTIONS)


def test_defaults_round_trip_to_the_same_params(params: Params):
    sections = section_defaults(params)
    assert sections["train"]["hgb"]["learning_rate"] == params.train.hgb.learning_rate == 0.05
    assert "max_depth" not in sections["train"]["hgb"]  # None: left out, KFP has no null parameter value
    rebuilt = params_from_sections(sections, "test")
    assert rebuilt.model_dump(exclude={"abtest"}) == params.model_dump(exclude={"abtest"})


def test_kfp_struct_numbers_validate_as_ints(params: Params):
    """KFP struct values are doubles (max_iter: 1000.0): the model reads them back as the ints they were."""
    sections = section_defaults(params)
    sections["train"]["hgb"]["max_iter"] = 1000.0
    sections["split"]["seed"] = 42.0
    rebuilt = params_from_sections(sections, "test")
    assert rebuilt.train.hgb.max_iter == 1000
    assert isinstance(rebuilt.split.seed, int)


def test_overrides_apply_dotted_keys_with_yaml_values(params: Params):
    sections = section_defaults(params)
    updated = apply_overrides(
        sections,
        [
            "train.hgb.learning_rate=0.1",
            "train.hgb.max_depth=6",
            "drift.categorical=[]",
            "evaluate.gates.r2_min=0.8",
            "split.train_on_production_window=false",
        ],
    )
    assert updated["train"]["hgb"]["learning_rate"] == 0.1
    assert updated["train"]["hgb"]["max_depth"] == 6
    assert updated["evaluate"]["gates"] == {"r2_min": 0.8, "mae_max": 0.4}
    assert updated["split"]["train_on_production_window"] is False
    assert sections["train"]["hgb"]["learning_rate"] == 0.05  # the input is not modified


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "train.hgb.learning_rate=2",
            r"--set: train\.hgb\.learning_rate: Input should be less than or equal to 1",
        ),
        ("train.hgb.learnig_rate=0.1", r"--set: train\.hgb\.learnig_rate: unknown key"),
        ("train.model=xgboost", r"--set: train\.model: Input should be 'hgb' or 'random_forest'"),
        ("abtest.alpha=0.1", r"--set abtest\.alpha: not a pipeline parameter"),
        ("train.hgb.learning_rate", r"--set 'train\.hgb\.learning_rate': expected KEY=VALUE"),
        ("train.model.kind=hgb", r"--set train\.model\.kind: train\.model is not a mapping"),
        ("drift.threshold=[1", r"--set drift\.threshold: value '\[1' is not valid YAML"),
    ],
)
def test_bad_overrides_fail_naming_the_key(params: Params, assignment: str, message: str):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(section_defaults(params), [assignment])


def test_unknown_section_fails(params: Params):
    with pytest.raises(ConfigError, match=r"pipeline parameters: abtest: not a stage section"):
        params_from_sections({**section_defaults(params), "abtest": {}}, "pipeline parameters")
