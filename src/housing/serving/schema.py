"""Request parsing and validation from the model's metadata schema (feature names and valid ranges).

Hand-written with numpy for speed: type checks run as C-level set/map passes over the decoded JSON, and the
slow per-element walk only runs to name the offending field once a check has failed. V2 tensors may also come
as binary data after the JSON (:class:`BinaryTensors`, the binary tensor extension). Every rejection is a
:class:`RequestError` whose message names the instance/field and the rule it broke. The same rules, as
pydantic models for the OpenAPI document, are in :mod:`housing.serving.bodies` (a test keeps them in step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from housing.artifact import FeatureSpec
from housing.errors import HousingError

# Bounded label values of model_prediction_errors_total{reason}.
ERROR_REASONS = ("invalid_json", "invalid_input", "out_of_range", "too_large", "injected", "model_error")
V2_DATATYPES = ("FP32", "FP64")
BINARY_DTYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}  # binary tensor data: little-endian
MAX_REQUEST_ID_CHARS = 128
MAX_FEEDBACK_TOKEN_CHARS = 65_536  # a token of --feedback-token-max-rows rows is far shorter

_NUMBER_TYPES = frozenset((int, float))  # exact types: bool (a subclass of int) is not a number here
Locate = Callable[[int, int], str]  # (instance, feature index) -> where that value sits in the request


class RequestError(HousingError):
    """A request the server refuses: HTTP ``status`` with ``{"error": message}``, counted under ``reason``."""

    def __init__(self, message: str, status: int = 400, reason: str = "invalid_input") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _printable_ascii(value: Any, max_chars: int) -> bool:
    return type(value) is str and 0 < len(value) <= max_chars and value.isascii() and value.isprintable()


def valid_request_id(value: Any) -> bool:
    """Printable ASCII, 1-128 chars: safe to echo in a header and to write to the log."""
    return _printable_ascii(value, MAX_REQUEST_ID_CHARS)


@dataclass(frozen=True)
class V2Request:
    features: np.ndarray  # float64, shape (n, n_features), validated
    id: str | None
    outputs: tuple[str, ...]  # requested output names (empty: all)
    binary_output: bool = False  # answer with the output as binary data (binary tensor extension)


def _flag(parameters: dict | None, key: str, where: str, default: bool = False) -> bool:
    """A boolean parameter of the binary tensor extension; ``default`` when absent."""
    if not parameters or key not in parameters:
        return default
    value = parameters[key]
    if type(value) is not bool:
        raise RequestError(f"{where}.{key}: must be true or false, got {_describe(value)}")
    return value


class BinaryTensors:
    """The binary part of a request (the bytes after its JSON), read tensor by tensor in input order.

    Binary tensor data is little-endian, row-major, without padding (Open Inference Protocol binary tensor
    extension): ``binary_data_size`` must be exactly the tensor's element count times its element size.
    """

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._offset = 0

    def read(self, field: str, size: Any, count: int, datatype: str, shape: list[int]) -> np.ndarray:
        """``count`` values of ``datatype`` as float64, given the input's ``binary_data_size``."""
        if type(size) is not int or size < 0:
            raise RequestError(f"{field}: must be a non-negative integer (bytes), got {_describe(size)}")
        dtype = BINARY_DTYPES[datatype]
        if size != count * dtype.itemsize:
            raise RequestError(
                f"{field}: {size} bytes, but shape {shape} of {datatype} needs {count * dtype.itemsize}"
            )
        remaining = len(self._data) - self._offset
        if size > remaining:
            raise RequestError(
                f"{field}: {size} bytes, but only {remaining} bytes of binary data remain after the JSON "
                "(Inference-Header-Content-Length)"
            )
        start, self._offset = self._offset, self._offset + size
        return np.frombuffer(self._data[start : self._offset], dtype=dtype).astype(np.float64)

    def check_all_read(self) -> None:
        left = len(self._data) - self._offset
        if left:
            raise RequestError(
                f"Inference-Header-Content-Length: {left} bytes after the JSON part belong to no input "
                "(each binary input gives its size in parameters.binary_data_size)"
            )


class FeatureSchema:
    """The model's input schema: feature order, valid ranges (widened by a tolerance) and batch limit."""

    def __init__(self, features: Sequence[FeatureSpec], *, tolerance: float = 0.0, max_batch: int = 1000):
        self.names = tuple(f.name for f in features)
        self.width = len(self.names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.name_set = frozenset(self.names)
        mins = np.array([f.min for f in features], dtype=np.float64)
        maxs = np.array([f.max for f in features], dtype=np.float64)
        slack = tolerance * (maxs - mins)
        self.lower = mins - slack
        self.upper = maxs + slack
        self.tolerance = tolerance
        self.max_batch = max_batch

    # --- shared checks ---------------------------------------------------------------------------------

    def check_batch_size(self, n: int, field: str) -> None:
        if n == 0:
            raise RequestError(f"{field}: empty batch; send at least one instance")
        if n > self.max_batch:
            raise RequestError(
                f"{field}: batch of {n} instances exceeds the limit of {self.max_batch}",
                status=413,
                reason="too_large",
            )

    def check_ranges(self, X: np.ndarray, locate: Locate) -> None:
        """Reject non-finite values and values outside the valid ranges (naming up to 3 of them)."""
        ok = (self.lower <= X) & (self.upper >= X)  # False for NaN too
        if ok.all():
            return
        rows, cols = np.nonzero(~ok)
        problems = []
        for i, j in zip(rows[:3].tolist(), cols[:3].tolist(), strict=True):
            value = float(X[i, j])
            where = locate(i, j)
            if not math.isfinite(value):
                problems.append(f"{where}: {value} is not a finite number")
            else:
                problems.append(
                    f"{where}: {value:g} is outside the valid range "
                    f"[{self.lower[j]:g}, {self.upper[j]:g}] of {self.names[j]}"
                )
        more = f" (and {len(rows) - 3} more)" if len(rows) > 3 else ""
        reason = "invalid_input" if problems[0].endswith("finite number") else "out_of_range"
        raise RequestError("; ".join(problems) + more, reason=reason)

    # --- KServe V1 -------------------------------------------------------------------------------------

    def parse_v1(self, body: Any) -> np.ndarray:
        """``{"instances": [[8 numbers] | {feature: number}, ...]}`` -> validated float64 (n, 8) matrix."""
        if type(body) is not dict:
            raise RequestError('request body: must be a JSON object like {"instances": [...]}')
        if "instances" not in body:
            raise RequestError('request body: missing "instances" (a list of instances)')
        instances = body["instances"]
        if type(instances) is not list:
            raise RequestError("instances: must be a list of instances")
        self.check_batch_size(len(instances), "instances")
        X = self._fast_rows(instances)
        if X is None:
            X = self._slow_rows(instances)
        self.check_ranges(X, lambda i, j: f"instances[{i}].{self.names[j]}")
        return X

    def _fast_rows(self, instances: list) -> np.ndarray | None:
        """The common case in C-level passes: every instance a list of 8 plain numbers."""
        if (
            set(map(type, instances)) == {list}
            and set(map(len, instances)) == {self.width}
            and set(map(type, chain.from_iterable(instances))) <= _NUMBER_TYPES
        ):
            return np.array(instances, dtype=np.float64)
        return None

    def _slow_rows(self, instances: list) -> np.ndarray:
        rows = [self._instance_row(i, instance) for i, instance in enumerate(instances)]
        return np.array(rows, dtype=np.float64)

    def _instance_row(self, i: int, instance: Any) -> list:
        if type(instance) is list:
            if len(instance) != self.width:
                raise RequestError(
                    f"instances[{i}]: has {len(instance)} values, expected {self.width} "
                    f"({', '.join(self.names)})"
                )
            for j, value in enumerate(instance):
                if not _is_number(value):
                    raise RequestError(
                        f"instances[{i}][{j}] ({self.names[j]}): {_describe(value)} is not a number"
                    )
            return instance
        if type(instance) is dict:
            missing = [n for n in self.names if n not in instance]
            if missing:
                raise RequestError(f"instances[{i}]: missing feature(s) {', '.join(missing)}")
            unknown = [str(k) for k in instance if k not in self.name_set]
            if unknown:
                raise RequestError(
                    f"instances[{i}]: unknown feature(s) {', '.join(unknown)}; "
                    f"expected {', '.join(self.names)}"
                )
            row = [instance[name] for name in self.names]
            for name, value in zip(self.names, row, strict=True):
                if not _is_number(value):
                    raise RequestError(f"instances[{i}].{name}: {_describe(value)} is not a number")
            return row
        raise RequestError(
            f"instances[{i}]: must be a list of {self.width} numbers or an object keyed by feature name, "
            f"got {_describe(instance)}"
        )

    # --- Open Inference Protocol (V2) ------------------------------------------------------------------

    def parse_v2(
        self, body: Any, input_name: str, output_name: str, binary: BinaryTensors | None = None
    ) -> V2Request:
        """An inference request: one FP32/FP64 tensor [n, 8], or one [n] / [n, 1] tensor per feature.

        ``binary``: the bytes after the JSON when the request uses the binary tensor extension (the
        ``Inference-Header-Content-Length`` header was sent); inputs with ``parameters.binary_data_size``
        take their values from it, in input order.
        """
        if type(body) is not dict:
            raise RequestError('request body: must be a JSON object like {"inputs": [...]}')
        request_id = body.get("id")
        if request_id is not None and type(request_id) is not str:
            raise RequestError("id: must be a string")
        parameters = body.get("parameters")
        if parameters is not None and type(parameters) is not dict:
            raise RequestError("parameters: must be an object")
        binary_output = _flag(parameters, "binary_data_output", "parameters")
        outputs, binary_output = self._requested_outputs(body.get("outputs"), output_name, binary_output)
        inputs = body.get("inputs")
        if type(inputs) is not list or not inputs:
            raise RequestError('inputs: must be a non-empty list of input tensors ("inputs" is required)')
        tensors = [self._tensor(k, tensor, binary) for k, tensor in enumerate(inputs)]
        if binary is not None:
            binary.check_all_read()
        if len(tensors) == 1 and tensors[0][0] not in self.name_set:
            X = self._matrix_input(tensors[0], input_name)

            def locate(i: int, j: int) -> str:
                return f"inputs[0].data[{i * self.width + j}] (instance {i}, {self.names[j]})"

        else:
            X, positions = self._feature_inputs(tensors)

            def locate(i: int, j: int) -> str:
                return f"inputs[{positions[j]}].data[{i}] ({self.names[j]})"

        self.check_ranges(X, locate)
        return V2Request(features=X, id=request_id, outputs=outputs, binary_output=binary_output)

    def _requested_outputs(
        self, outputs: Any, output_name: str, binary_default: bool
    ) -> tuple[tuple[str, ...], bool]:
        """The requested output names, and whether the output goes back as binary data."""
        if outputs is None:
            return (), binary_default
        if type(outputs) is not list:
            raise RequestError('outputs: must be a list of {"name": ...} objects')
        names = []
        binary = binary_default
        for k, output in enumerate(outputs):
            if type(output) is not dict or type(output.get("name")) is not str:
                raise RequestError(f'outputs[{k}]: must be an object with a string "name"')
            if output["name"] != output_name:
                raise RequestError(
                    f"outputs[{k}].name: unknown output {_describe(output['name'])}; "
                    f"the model has {output_name!r}"
                )
            parameters = output.get("parameters")
            if parameters is not None and type(parameters) is not dict:
                raise RequestError(f"outputs[{k}].parameters: must be an object")
            # The output's own binary_data overrides the request's binary_data_output.
            binary = _flag(parameters, "binary_data", f"outputs[{k}].parameters", binary_default)
            names.append(output["name"])
        return tuple(names), binary

    def _tensor(self, k: int, tensor: Any, binary: BinaryTensors | None) -> tuple[str, list[int], np.ndarray]:
        """Check one input tensor's fields; return (name, shape, flat float64 data)."""
        where = f"inputs[{k}]"
        if type(tensor) is not dict:
            raise RequestError(f"{where}: must be an object with name, shape, datatype and data")
        parameters = tensor.get("parameters")
        if parameters is not None and type(parameters) is not dict:
            raise RequestError(f"{where}.parameters: must be an object")
        in_binary = bool(parameters) and "binary_data_size" in parameters
        for field in ("name", "shape", "datatype") if in_binary else ("name", "shape", "datatype", "data"):
            if field not in tensor:
                raise RequestError(f'{where}: missing "{field}"')
        name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
        if type(name) is not str:
            raise RequestError(f"{where}.name: must be a string")
        if datatype not in V2_DATATYPES:
            raise RequestError(
                f"{where}.datatype: {_describe(datatype)} is not supported; "
                f"use one of {', '.join(V2_DATATYPES)}"
            )
        if type(shape) is not list or not shape or not all(type(d) is int and d >= 0 for d in shape):
            raise RequestError(f"{where}.shape: must be a non-empty list of non-negative integers")
        expected = math.prod(shape)
        if in_binary:
            if tensor.get("data") is not None:
                raise RequestError(
                    f'{where}: has both "data" and parameters.binary_data_size; send the values one way'
                )
            size_field = f"{where}.parameters.binary_data_size"
            if binary is None:
                raise RequestError(
                    f"{size_field}: binary tensor data needs the Inference-Header-Content-Length header "
                    "(the length of the JSON part in bytes)"
                )
            values = binary.read(size_field, parameters["binary_data_size"], expected, datatype, shape)
            return name, shape, values
        data = tensor["data"]
        if type(data) is not list:
            raise RequestError(f"{where}.data: must be a list of numbers (flat or nested, row-major)")
        flat = self._flatten(data, where)
        if len(flat) != expected:
            raise RequestError(f"{where}.data: has {len(flat)} elements but shape {shape} needs {expected}")
        return name, shape, np.array(flat, dtype=np.float64)

    @staticmethod
    def _flatten(data: list, where: str) -> list:
        kinds = set(map(type, data))
        if kinds <= _NUMBER_TYPES:
            return data
        if kinds == {list}:
            inner = list(chain.from_iterable(data))
            if set(map(type, inner)) <= _NUMBER_TYPES:
                return inner
        flat: list = []
        stack = [(data, f"{where}.data")]
        while stack:  # generic walk (deeper nesting, or to name the bad element)
            node, path = stack.pop()
            if type(node) is list:
                stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
            elif _is_number(node):
                flat.append(node)
            else:
                raise RequestError(f"{path}: {_describe(node)} is not a number")
        return flat

    def _matrix_input(self, tensor: tuple[str, list[int], np.ndarray], input_name: str) -> np.ndarray:
        _, shape, data = tensor
        if len(shape) != 2 or shape[1] != self.width:
            raise RequestError(
                f"inputs[0].shape: {shape} must be [n, {self.width}] for the {input_name!r} tensor "
                f"(or send one input per feature: {', '.join(self.names)})"
            )
        self.check_batch_size(shape[0], "inputs[0].shape[0]")
        return data.reshape(shape[0], self.width)

    def _feature_inputs(
        self, tensors: list[tuple[str, list[int], np.ndarray]]
    ) -> tuple[np.ndarray, list[int]]:
        positions: dict[str, int] = {}
        for k, (name, _, _) in enumerate(tensors):
            if name not in self.name_set:
                raise RequestError(
                    f"inputs[{k}].name: unknown input {_describe(name)}; send one input per feature "
                    f"({', '.join(self.names)}) or a single [n, {self.width}] tensor"
                )
            if name in positions:
                raise RequestError(f"inputs[{k}].name: duplicate input {name!r}")
            positions[name] = k
        missing = [n for n in self.names if n not in positions]
        if missing:
            raise RequestError(f"inputs: missing input(s) for feature(s) {', '.join(missing)}")
        n = None
        for k, (name, shape, _) in enumerate(tensors):
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise RequestError(f"inputs[{k}].shape: {shape} must be [n] or [n, 1] for feature {name}")
            if n is None:
                n = shape[0]
                self.check_batch_size(n, f"inputs[{k}].shape[0]")
            elif shape[0] != n:
                raise RequestError(f"inputs[{k}].shape: {shape[0]} rows, but inputs[0] has {n}")
        columns = [tensors[positions[name]][2] for name in self.names]
        return np.column_stack(columns), [positions[name] for name in self.names]


@dataclass(frozen=True)
class FeedbackBody:
    """A parsed ``POST /v1/feedback`` body: exactly one of ``token`` and ``request_id`` is set."""

    request_id: str | None
    token: str | None
    actuals: list[float]


def parse_feedback(body: Any) -> FeedbackBody:
    """``{"feedback_token" | "request_id": ..., "actual": 1.5 | "actuals": [...]}`` -> a FeedbackBody."""
    if type(body) is not dict:
        raise RequestError('request body: must be a JSON object like {"feedback_token": "…", "actual": 1.5}')
    has_token, has_id = "feedback_token" in body, "request_id" in body
    if has_token == has_id:
        raise RequestError(
            'request body: send exactly one of "feedback_token" (the prediction\'s X-Feedback-Token header; '
            'any replica scores it) or "request_id" (only the replica that answered knows it)'
        )
    token = request_id = None
    if has_token:
        token = body["feedback_token"]
        if not _printable_ascii(token, MAX_FEEDBACK_TOKEN_CHARS):
            raise RequestError(
                f"feedback_token: must be a string of 1-{MAX_FEEDBACK_TOKEN_CHARS} printable ASCII characters"
            )
    else:
        request_id = body["request_id"]
        if not valid_request_id(request_id):
            raise RequestError(
                f"request_id: must be a string of 1-{MAX_REQUEST_ID_CHARS} printable ASCII characters"
            )
    has_one, has_many = "actual" in body, "actuals" in body
    if has_one == has_many:
        raise RequestError('request body: send exactly one of "actual" (a number) or "actuals" (a list)')
    if has_one:
        values, field = [body["actual"]], "actual"
    else:
        values, field = body["actuals"], "actuals"
        if type(values) is not list or not values:
            raise RequestError("actuals: must be a non-empty list of numbers")
    for i, value in enumerate(values):
        where = field if has_one else f"actuals[{i}]"
        if not _is_number(value) or not math.isfinite(value):
            raise RequestError(f"{where}: {_describe(value)} is not a finite number")
    return FeedbackBody(request_id, token, [float(v) for v in values])
