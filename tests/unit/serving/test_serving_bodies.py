"""The pydantic body models (the OpenAPI document's schemas) agree with the fast hand-written validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_serving_schema import FEATURES, NAMED, RANGES, ROW, SPECS

from housing.serving.bodies import Feedback, component_schemas, request_models
from housing.serving.schema import FeatureSchema, RequestError, parse_feedback

SCHEMA = FeatureSchema(SPECS, tolerance=0.1, max_batch=10)
MODELS = request_models(SCHEMA, "variable")


def fast_accepts(parse, *args) -> bool:
    try:
        parse(*args)
    except RequestError:
        return False
    return True


def model_accepts(model, body) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


def _bounds(name: str) -> tuple[float, float]:
    j = FEATURES.index(name)
    return float(SCHEMA.lower[j]), float(SCHEMA.upper[j])


def _valid(name: str) -> st.SearchStrategy:
    low, high = _bounds(name)
    return st.floats(low, high) | st.integers(math.ceil(low), math.floor(high)) | st.sampled_from([low, high])


def _invalid(name: str) -> st.SearchStrategy:
    low, high = _bounds(name)
    width = high - low
    return (
        st.floats(high, high + width, exclude_min=True)
        | st.floats(low - width, low, exclude_max=True)
        | st.sampled_from([math.nextafter(low, -math.inf), math.nextafter(high, math.inf)])
        | st.sampled_from([True, None, "1.5", float("nan"), float("inf"), [1.0]])
    )


@st.composite
def _row(draw, named: bool):
    """A valid row, broken in one place a quarter of the time (a value, a name, the length)."""
    values = {name: draw(_valid(name)) for name in FEATURES}
    damage = draw(st.sampled_from(["none"] * 6 + ["value", "shape"]))
    if damage == "value":
        name = draw(st.sampled_from(FEATURES))
        values[name] = draw(_invalid(name))
    if named:
        row = dict(values)
        if damage == "shape":
            row.pop(draw(st.sampled_from(FEATURES))) if draw(st.booleans()) else row.update(extra=1.0)
        return row
    row = list(values.values())
    if damage == "shape":
        row = row[:-1] if draw(st.booleans()) else [*row, 1.0]
    return row


ROWS = _row(named=False) | _row(named=True)
V1_BODY = st.fixed_dictionaries(
    {
        "instances": st.lists(ROWS, min_size=1, max_size=3)
        | st.lists(ROWS, min_size=9, max_size=11)  # around max_batch (10)
        | st.sampled_from([None, {}, "x"])
    },
    optional={"parameters": st.just({})},
) | st.sampled_from([None, [], {}, {"instance": []}, "instances"])


@settings(max_examples=600, deadline=None)
@given(body=V1_BODY)
def test_v1_model_and_validator_agree_on_every_body(body):
    accepted = fast_accepts(SCHEMA.parse_v1, body)
    event(f"accepted: {accepted}")  # both outcomes must be common (pytest --hypothesis-show-statistics)
    assert model_accepts(MODELS["V1Request"], body) == accepted


def _tensor(data, shape, name="input", datatype="FP32", **extra):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, **extra}


V2_TENSOR = st.builds(  # mostly right: one [1, 8] tensor, sometimes with a broken value
    _tensor, data=_row(named=False), shape=st.just([1, 8]), datatype=st.sampled_from(["FP32", "FP64"])
) | st.builds(
    _tensor,
    data=_row(named=False) | st.lists(st.floats(0, 50), max_size=9),
    shape=st.sampled_from([[1, 8], [8], [2, 4], [1, -8], [True, 8]]),
    name=st.sampled_from(["input", "x", *FEATURES]),
    datatype=st.sampled_from(["FP32", "FP64", "INT64", 3]),
)
V2_BODY = st.fixed_dictionaries(
    {
        "inputs": st.lists(V2_TENSOR, min_size=1, max_size=1)
        | st.lists(V2_TENSOR, min_size=2, max_size=2)
        | st.sampled_from([None, {}, []])
    },
    optional={
        "id": st.sampled_from(["r-1", 3, None]),
        "parameters": st.sampled_from([{}, {"binary_data_output": False}, {"binary_data_output": "yes"}, []]),
        "outputs": st.sampled_from(
            [
                [],
                [{"name": "variable"}],
                [{"name": "other"}],
                [{"name": "variable", "parameters": {"binary_data": 1}}],
            ]
        ),
    },
)


@settings(max_examples=600, deadline=None)
@given(body=V2_BODY)
def test_v2_model_accepts_whatever_the_validator_accepts(body):
    """The document may not promise less than the server takes; shapes vs data it cannot express, so the
    server refuses more (e.g. a [2, 4] tensor), never less."""
    accepted = fast_accepts(SCHEMA.parse_v2, body, "input", "variable")
    event(f"accepted: {accepted}")
    if accepted:
        assert model_accepts(MODELS["InferenceRequest"], body)
    if not model_accepts(MODELS["InferenceRequest"], body):
        assert not fast_accepts(SCHEMA.parse_v2, body, "input", "variable")


def test_valid_bodies_pass_both():
    v1 = {"instances": [ROW, NAMED]}
    assert model_accepts(MODELS["V1Request"], v1)
    assert fast_accepts(SCHEMA.parse_v1, v1)
    v2 = {"id": "a", "inputs": [_tensor(ROW, [1, 8])], "outputs": [{"name": "variable"}]}
    assert model_accepts(MODELS["InferenceRequest"], v2)
    assert fast_accepts(SCHEMA.parse_v2, v2, "input", "variable")
    per_feature = {"inputs": [_tensor([NAMED[n]], [1], name=n, datatype="FP64") for n in FEATURES]}
    assert model_accepts(MODELS["InferenceRequest"], per_feature)
    assert fast_accepts(SCHEMA.parse_v2, per_feature, "input", "variable")


@settings(max_examples=300, deadline=None)
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "request_id": st.sampled_from(["a", "r-1", "", "é", "x" * 129, "\x01", 7]),
            "feedback_token": st.sampled_from(["f1.abc", "", "é", "x" * 65_537, "\n", None, 3]),
            "actual": st.sampled_from([1.5, 2, True, None, "1", float("nan")]),
            "actuals": st.sampled_from([[1.0, 2], [], [True], None, [float("inf")], 1.0]),
        },
    )
    | st.sampled_from([None, [], "x"])
)
def test_feedback_model_and_parser_agree(body):
    assert model_accepts(Feedback, body) == fast_accepts(parse_feedback, body)


def test_document_bounds_are_the_servers_widened_ranges():
    schemas = component_schemas(list(MODELS.values()))
    latitude = schemas["NamedInstance"]["properties"]["Latitude"]
    low, high = RANGES["Latitude"]
    width = high - low
    assert latitude == {"type": "number", "minimum": low - 0.1 * width, "maximum": high + 0.1 * width}
    assert np.isclose(latitude["minimum"], SCHEMA.lower[FEATURES.index("Latitude")])
    instances = schemas["V1Request"]["properties"]["instances"]
    assert (instances["minItems"], instances["maxItems"]) == (1, SCHEMA.max_batch)
    assert schemas["RequestOutput"]["properties"]["name"]["enum"] == ["variable"]


@pytest.mark.parametrize("name", ["copy", "model_config", "json"])
def test_features_named_like_pydantic_attributes_still_work(name):
    schema = FeatureSchema([SPECS[0].__class__(name, 0.0, 1.0)], max_batch=2)
    model = request_models(schema, "variable")["V1Request"]
    assert model_accepts(model, {"instances": [{name: 0.5}]})
    assert not model_accepts(model, {"instances": [{name: 1.5}]})
