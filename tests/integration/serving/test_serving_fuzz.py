"""Schema-based fuzzing of the live server from its own /openapi.json: no input may produce a 5xx.

Schemathesis generates valid and invalid requests for every operation (a bounded number of examples per
operation and mode) and also checks status codes, content types and response bodies against the document.
Hypothesis is driven directly: schemathesis' lazy pytest fixture loader does not support pytest 9.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from housing.serving.feedback_client import read_feedback_token

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_no_input_makes_the_server_fail(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.update(base_url=server.url)
    auth = {"Authorization": f"Bearer {read_feedback_token(server.feedback_token_file)}"}
    started = time.monotonic()
    calls = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not operation.body and not operation.path_parameters:
                continue  # nothing to make invalid

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case):
                nonlocal calls
                calls += 1
                # The feedback credential on every call: feedback bodies get past the 401 and are checked.
                case.call_and_validate(checks=CHECKS, timeout=10, headers=auth)

            exercise()
    assert calls > 200
    assert time.monotonic() - started < 120
    # The server survived all of it.
    assert server.proc.poll() is None
