"""Request parsing and validation: V1 instances, V2 tensors, feedback bodies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from housing.artifact import FeatureSpec
from housing.config import FEATURES
from housing.serving.schema import FeatureSchema, FeedbackBody, RequestError, parse_feedback, valid_request_id

RANGES = {
    "MedInc": (0.0, 20.0),
    "HouseAge": (1.0, 100.0),
    "AveRooms": (0.5, 200.0),
    "AveBedrms": (0.1, 50.0),
    "Population": (1.0, 50000.0),
    "AveOccup": (0.5, 1500.0),
    "Latitude": (32.4, 42.1),
    "Longitude": (-124.5, -114.1),
}
SPECS = [FeatureSpec(name, *RANGES[name]) for name in FEATURES]
ROW = [8.3252, 41, 6.98, 1.02, 322, 2.55, 37.88, -122.23]
NAMED = dict(zip(FEATURES, ROW, strict=True))


@pytest.fixture
def schema() -> FeatureSchema:
    return FeatureSchema(SPECS, tolerance=0.0, max_batch=10)


def rejects(fn, *args, status=400, reason=None, match=None) -> RequestError:
    with pytest.raises(RequestError) as info:
        fn(*args)
    assert info.value.status == status
    if reason is not None:
        assert info.value.reason == reason
    if match is not None:
        assert match in str(info.value), str(info.value)
    return info.value


# --- V1 -----------------------------------------------------------------------------------------------------


def test_v1_lists_and_objects_give_the_same_matrix(schema):
    X = schema.parse_v1({"instances": [ROW, NAMED, {k: NAMED[k] for k in reversed(FEATURES)}]})
    assert X.dtype == np.float64
    assert X.shape == (3, 8)
    np.testing.assert_array_equal(X[0], X[1])
    np.testing.assert_array_equal(X[0], X[2])
    np.testing.assert_array_equal(X[0], np.array(ROW, dtype=np.float64))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([ROW], "must be a JSON object"),
        ({"inputs": [ROW]}, 'missing "instances"'),
        ({"instances": ROW}, None),  # a flat row instead of a list of rows
        ({"instances": "x"}, "must be a list"),
        ({"instances": [ROW[:7]]}, "instances[0]: has 7 values, expected 8"),
        ({"instances": [ROW, [*ROW, 1.0]]}, "instances[1]: has 9 values"),
        (
            {"instances": [[*ROW[:3], "6.98", *ROW[4:]]]},
            "instances[0][3] (AveBedrms): '6.98' is not a number",
        ),
        ({"instances": [[True, *ROW[1:]]]}, "instances[0][0] (MedInc): True is not a number"),
        ({"instances": [[None, *ROW[1:]]]}, "is not a number"),
        ({"instances": [[[1.0], *ROW[1:]]]}, "is not a number"),
        ({"instances": [{k: v for k, v in NAMED.items() if k != "Latitude"}]}, "missing feature(s) Latitude"),
        ({"instances": [{**NAMED, "Rooms": 3}]}, "unknown feature(s) Rooms"),
        ({"instances": [{**NAMED, "HouseAge": "old"}]}, "instances[0].HouseAge: 'old' is not a number"),
        ({"instances": [42]}, "instances[0]: must be a list of 8 numbers or an object"),
    ],
)
def test_v1_rejections_name_the_field_and_rule(schema, body, match):
    error = rejects(schema.parse_v1, body, match=match)
    assert error.reason == "invalid_input"


def test_v1_out_of_range_names_instance_feature_and_bounds(schema):
    bad = [*ROW[:6], 50.0, ROW[7]]
    error = rejects(schema.parse_v1, {"instances": [ROW, bad]}, reason="out_of_range")
    assert str(error) == "instances[1].Latitude: 50 is outside the valid range [32.4, 42.1] of Latitude"


def test_v1_non_finite_values_are_rejected(schema):
    # JSON has no NaN, but 1e999 decodes to inf.
    rejects(schema.parse_v1, {"instances": [[float("inf"), *ROW[1:]]]}, match="is not a finite number")
    rejects(schema.parse_v1, {"instances": [[float("nan"), *ROW[1:]]]}, match="instances[0].MedInc: nan")


def test_v1_reports_at_most_three_violations(schema):
    error = rejects(schema.parse_v1, {"instances": [[-1.0] * 8] * 2})
    assert str(error).count("outside the valid range") == 3
    assert "(and 13 more)" in str(error)


def test_batch_limits(schema):
    rejects(schema.parse_v1, {"instances": []}, match="empty batch")
    rejects(schema.parse_v1, {"instances": [ROW] * 11}, status=413, reason="too_large", match="limit of 10")
    assert schema.parse_v1({"instances": [ROW] * 10}).shape == (10, 8)


def test_tolerance_widens_each_range_by_a_share_of_its_width():
    strict = FeatureSchema(SPECS, tolerance=0.0)
    lenient = FeatureSchema(SPECS, tolerance=0.1)  # MedInc [0, 20] -> [-2, 22]
    body = {"instances": [[21.0, *ROW[1:]]]}
    rejects(strict.parse_v1, body, reason="out_of_range")
    assert lenient.parse_v1(body)[0, 0] == 21.0
    rejects(lenient.parse_v1, {"instances": [[22.5, *ROW[1:]]]}, match="[-2, 22]")


def test_bounds_are_inclusive(schema):
    lows = [RANGES[n][0] for n in FEATURES]
    highs = [RANGES[n][1] for n in FEATURES]
    assert schema.parse_v1({"instances": [lows, highs]}).shape == (2, 8)


# --- V2 -----------------------------------------------------------------------------------------------------


def v2(*inputs, **extra) -> dict:
    return {"inputs": list(inputs), **extra}


def tensor(data, shape, name="input", datatype="FP32", **extra) -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, **extra}


def test_v2_flat_and_nested_tensor_data_are_equivalent(schema):
    nested = schema.parse_v2(v2(tensor([ROW, ROW], [2, 8])), "input", "variable")
    flat = schema.parse_v2(v2(tensor(ROW + ROW, [2, 8], datatype="FP64")), "input", "variable")
    np.testing.assert_array_equal(nested.features, flat.features)
    assert nested.features.shape == (2, 8)
    assert nested.id is None
    assert nested.outputs == ()


def test_v2_one_input_per_feature(schema):
    inputs = [tensor([NAMED[n], NAMED[n]], [2], name=n) for n in reversed(FEATURES)]
    request = schema.parse_v2(v2(*inputs, id="abc", outputs=[{"name": "variable"}]), "input", "variable")
    np.testing.assert_array_equal(request.features, np.array([ROW, ROW], dtype=np.float64))
    assert request.id == "abc"
    assert request.outputs == ("variable",)
    column_inputs = [tensor([[NAMED[n]]], [1, 1], name=n) for n in FEATURES]
    assert schema.parse_v2(v2(*column_inputs), "input", "variable").features.shape == (1, 8)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([], "must be a JSON object"),
        ({}, "inputs: must be a non-empty list"),
        (v2(), "inputs: must be a non-empty list"),
        (v2(tensor(ROW, [1, 8]), id=7), "id: must be a string"),
        (v2(tensor(ROW, [1, 8]), parameters=[]), "parameters: must be an object"),
        (v2(tensor(ROW, [1, 8]), outputs=[{"name": "price"}]), "outputs[0].name: unknown output 'price'"),
        (v2(tensor(ROW, [1, 8]), outputs="variable"), "outputs: must be a list"),
        (v2({"name": "input", "shape": [1, 8], "data": ROW}), 'inputs[0]: missing "datatype"'),
        (v2(tensor(ROW, [1, 8], datatype="INT64")), "inputs[0].datatype: 'INT64' is not supported"),
        (v2(tensor(ROW, [1, 8], datatype="BYTES")), "use one of FP32, FP64"),
        (v2(tensor(ROW, [1, -8])), "inputs[0].shape: must be a non-empty list of non-negative integers"),
        (v2(tensor(ROW, "1,8")), "inputs[0].shape"),
        (v2(tensor(ROW, [2, 8])), "has 8 elements but shape [2, 8] needs 16"),
        (v2(tensor(ROW, [8])), "inputs[0].shape: [8] must be [n, 8]"),
        (v2(tensor(ROW, [1, 4, 2])), "must be [n, 8]"),
        (v2(tensor([*ROW[:7], "x"], [1, 8])), "inputs[0].data[7]: 'x' is not a number"),
        (v2(tensor([[*ROW[:7], True]], [1, 8])), "inputs[0].data[0][7]: True is not a number"),
        (v2(tensor({"a": 1}, [1, 8])), "inputs[0].data: must be a list"),
        (v2(tensor([], [0, 8])), "empty batch"),
        (v2(tensor(ROW, [1, 8], parameters={"binary_data_size": 32})), 'has both "data" and parameters'),
        (
            v2(*[tensor([NAMED[n]], [1], name=n) for n in FEATURES[:7]]),
            "missing input(s) for feature(s) Longitude",
        ),
        (
            v2(tensor([1.0], [1], name="MedInc"), tensor([1.0], [1], name="MedInc")),
            "duplicate input 'MedInc'",
        ),
        (v2(tensor([1.0], [1], name="MedInc"), tensor([1.0], [1], name="rooms")), "unknown input 'rooms'"),
    ],
)
def test_v2_rejections_name_the_field_and_rule(schema, body, match):
    rejects(schema.parse_v2, body, "input", "variable", match=match)


def test_v2_per_feature_inputs_must_agree_on_rows(schema):
    inputs = [
        tensor([NAMED[n]] * (2 if n == "Latitude" else 1), [2 if n == "Latitude" else 1], name=n)
        for n in FEATURES
    ]
    rejects(schema.parse_v2, v2(*inputs), "input", "variable", match="rows, but inputs[0] has 1")


def test_v2_range_errors_point_into_the_tensor(schema):
    data = [*ROW, *ROW[:2], 999.0, *ROW[3:]]
    error = rejects(schema.parse_v2, v2(tensor(data, [2, 8])), "input", "variable", reason="out_of_range")
    assert str(error).startswith("inputs[0].data[10] (instance 1, AveRooms): 999 is outside")
    inputs = [tensor([NAMED[n] if n != "MedInc" else -3.0], [1], name=n) for n in reversed(FEATURES)]
    error = rejects(schema.parse_v2, v2(*inputs), "input", "variable")
    assert str(error).startswith("inputs[7].data[0] (MedInc): -3 is outside")


def test_v2_oversized_batch_is_413(schema):
    rejects(
        schema.parse_v2, v2(tensor(ROW * 11, [11, 8])), "input", "variable", status=413, reason="too_large"
    )


# --- feedback -----------------------------------------------------------------------------------------------


def test_feedback_single_and_multiple_by_request_id_or_token():
    assert parse_feedback({"request_id": "r1", "actual": 2}) == FeedbackBody("r1", None, [2.0])
    assert parse_feedback({"request_id": "r1", "actuals": [1.5, 2]}) == FeedbackBody("r1", None, [1.5, 2.0])
    assert parse_feedback({"feedback_token": "f1.abc", "actual": 1}) == FeedbackBody(None, "f1.abc", [1.0])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("r1", "must be a JSON object"),
        ({"actual": 1.0}, 'exactly one of "feedback_token"'),
        ({"request_id": "r1", "feedback_token": "f1.x", "actual": 1.0}, 'exactly one of "feedback_token"'),
        ({"feedback_token": "", "actual": 1.0}, "feedback_token: must be a string"),
        ({"feedback_token": 7, "actual": 1.0}, "feedback_token: must be a string"),
        ({"feedback_token": "f1.\n", "actual": 1.0}, "feedback_token: must be a string"),
        ({"feedback_token": "f1.x"}, 'exactly one of "actual"'),
        ({"request_id": "", "actual": 1.0}, "request_id"),
        ({"request_id": "x" * 129, "actual": 1.0}, "request_id"),
        ({"request_id": "a\nb", "actual": 1.0}, "request_id"),
        ({"request_id": "r1"}, 'exactly one of "actual"'),
        ({"request_id": "r1", "actual": 1.0, "actuals": [1.0]}, 'exactly one of "actual"'),
        ({"request_id": "r1", "actual": "2"}, "actual: '2' is not a finite number"),
        ({"request_id": "r1", "actual": float("inf")}, "actual: inf is not a finite number"),
        ({"request_id": "r1", "actuals": []}, "actuals: must be a non-empty list"),
        ({"request_id": "r1", "actuals": [1.0, False]}, "actuals[1]: False is not a finite number"),
    ],
)
def test_feedback_rejections(body, match):
    rejects(parse_feedback, body, match=match)


def test_request_ids_safe_to_echo():
    assert valid_request_id("0f1e2d-abc_42")
    for bad in ("", "x" * 129, "tab\there", "é", None, 42, "line\r\nbreak"):
        assert not valid_request_id(bad)


# --- property-based: any decoded JSON either parses to a valid matrix or is a RequestError ------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=10) | st.dictionaries(st.text(max_size=8), children, max_size=9)
    ),
    max_leaves=40,
)
NEAR_VALID_ROWS = st.lists(
    st.lists(st.floats(-200, 60_000) | st.integers(-10, 100), min_size=7, max_size=9), min_size=0, max_size=12
)


def _check_outcome(fn, *args):
    try:
        X, error = fn(*args), None
    except RequestError as exc:
        X, error = None, exc
    if error is not None:
        assert error.status in (400, 413)
        assert str(error)
        return
    X = getattr(X, "features", X)
    assert X.ndim == 2
    assert X.shape[1] == 8
    assert 1 <= X.shape[0] <= 10
    assert np.isfinite(X).all()


@settings(max_examples=300, deadline=None)
@given(body=JSON_VALUES | st.fixed_dictionaries({"instances": JSON_VALUES | NEAR_VALID_ROWS}))
def test_v1_parser_never_fails_unexpectedly(body):
    _check_outcome(FeatureSchema(SPECS, max_batch=10).parse_v1, body)


@settings(max_examples=300, deadline=None)
@given(
    body=JSON_VALUES
    | st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(["input", *FEATURES, "x"]),
                        "shape": st.lists(st.integers(-1, 12), min_size=1, max_size=3),
                        "datatype": st.sampled_from(["FP32", "FP64", "INT64"]),
                        "data": JSON_VALUES | NEAR_VALID_ROWS,
                    }
                ),
                max_size=9,
            )
        },
        optional={"id": JSON_VALUES, "outputs": JSON_VALUES, "parameters": JSON_VALUES},
    )
)
def test_v2_parser_never_fails_unexpectedly(body):
    _check_outcome(FeatureSchema(SPECS, max_batch=10).parse_v2, body, "input", "variable")


@settings(max_examples=200, deadline=None)
@given(
    body=JSON_VALUES
    | st.fixed_dictionaries(
        {},
        optional={
            "request_id": JSON_VALUES,
            "feedback_token": JSON_VALUES,
            "actual": JSON_VALUES,
            "actuals": JSON_VALUES,
        },
    )
)
def test_feedback_parser_never_fails_unexpectedly(body):
    try:
        parsed, status = parse_feedback(body), None
    except RequestError as exc:
        parsed, status = None, exc.status
    if parsed is None:
        assert status == 400
        return
    assert (parsed.request_id is None) != (parsed.token is None)
    assert parsed.token is not None or valid_request_id(parsed.request_id)
    assert parsed.actuals
    assert all(np.isfinite(parsed.actuals))
