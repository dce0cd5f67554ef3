"""The Open Inference Protocol's binary tensor extension at the HTTP level (what Triton's clients send).

A request or response body is a JSON object followed by raw tensor bytes; the ``Inference-Header-Content-
Length`` header gives the JSON's length (``Content-Length`` stays the whole body's). Inputs say how many bytes
they take with ``parameters.binary_data_size`` (read by :class:`housing.serving.schema.BinaryTensors`); a
client asks for binary outputs with ``parameters.binary_data_output`` on the request or
``parameters.binary_data`` on a requested output. Specification: KServe's and Triton's "Binary Tensor Data
Extension" pages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from housing.serving.http import ResponseHeaders
from housing.serving.schema import BinaryTensors, RequestError

HEADER = b"inference-header-content-length"  # ASGI servers lower-case header names
EXTENSION = "binary_tensor_data"  # its name in the server metadata's extensions (as Triton reports it)
CONTENT_TYPE = b"application/octet-stream"


def split_request(body: bytes, header: bytes) -> tuple[memoryview, BinaryTensors]:
    """(the JSON part, the binary part) of a request body, given its Inference-Header-Content-Length."""
    text = header.decode("latin-1").strip()
    if not text.isdigit() or not text.isascii():
        raise RequestError(
            f"Inference-Header-Content-Length: {text[:40]!r} is not a non-negative integer "
            "(the length of the JSON part in bytes)"
        )
    length = int(text)
    if length > len(body):
        raise RequestError(
            f"Inference-Header-Content-Length: {length} is more than the body's {len(body)} bytes"
        )
    view = memoryview(body)
    return view[:length], BinaryTensors(view[length:])


def encode_response(response: dict[str, Any], predictions: np.ndarray) -> tuple[bytes, ResponseHeaders]:
    """The response's only output as little-endian FP32 bytes after its JSON, and the headers that say so."""
    data = predictions.astype("<f4", copy=False).tobytes()
    response["outputs"][0]["parameters"] = {"binary_data_size": len(data)}
    header = orjson.dumps(response)
    return header + data, [(HEADER, b"%d" % len(header))]
