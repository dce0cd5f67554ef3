"""Deterministic assignment and the sample-ratio-mismatch check."""

from __future__ import annotations

import pytest
from abtest_synthetic import ab_records

from housing.config import AbTestParams
from housing.experiments.abtest import analyze
from housing.experiments.routing import assign_variant, bucket


def test_assignment_is_deterministic_salted_and_matches_the_share():
    keys = [f"house-{i}" for i in range(20_000)]
    first = [assign_variant(k, "exp-1", 0.1) for k in keys]
    assert first == [assign_variant(k, "exp-1", 0.1) for k in keys]
    share = first.count("challenger") / len(keys)
    assert share == pytest.approx(0.1, abs=0.01)
    # A new salt reshuffles the arms: about 10% of each arm's keys, independent of the old assignment.
    second = [assign_variant(k, "exp-2", 0.1) for k in keys]
    both = sum(a == b == "challenger" for a, b in zip(first, second, strict=True)) / len(keys)
    assert both == pytest.approx(0.01, abs=0.005)
    assert 0.0 <= bucket("x", "s") < 1.0
    assert all(assign_variant(k, "s", 0.0) == "champion" for k in keys[:100])


def test_sample_ratio_mismatch_warns():
    records = ab_records(4000, seed=91, challenger_share=0.5)
    balanced = analyze(records, AbTestParams(expected_challenger_share=0.5))
    assert balanced["sample_ratio"]["p_value"] > 0.001
    assert not any("sample ratio mismatch" in w for w in balanced["warnings"])
    skewed = analyze(records, AbTestParams(expected_challenger_share=0.1))
    assert skewed["sample_ratio"]["p_value"] < 1e-6
    assert any("sample ratio mismatch" in w for w in skewed["warnings"])
    assert analyze(records, AbTestParams())["sample_ratio"] is None
