"""The sample-ratio-mismatch check (the assignment it checks: tests/unit/serving/test_serving_routing.py)."""

from __future__ import annotations

from abtest_synthetic import ab_records

from housing.config import AbTestParams
from housing.experiments.abtest import analyze


def test_sample_ratio_mismatch_warns():
    records = ab_records(4000, seed=91, challenger_share=0.5)
    balanced = analyze(records, AbTestParams(expected_challenger_share=0.5))
    assert balanced.sample_ratio.p_value > 0.001
    assert not any("sample ratio mismatch" in w for w in balanced.warnings)
    skewed = analyze(records, AbTestParams(expected_challenger_share=0.1))
    assert skewed.sample_ratio.p_value < 1e-6
    assert any("sample ratio mismatch" in w for w in skewed.warnings)
    assert analyze(records, AbTestParams()).sample_ratio is None
