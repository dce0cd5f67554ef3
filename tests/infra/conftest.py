"""Fixtures for tests/infra; helpers live in cfn_support.py (template) and iam_policy.py (IAM evaluator)."""

import sys
from pathlib import Path

# Shared helpers live in sibling test directories (tests/ has no packages: import by directory):
# k8s_support renders the overlays, procutil runs moto_server on a free loopback port.
_TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_TESTS / "k8s"))
sys.path.insert(0, str(_TESTS / "integration" / "monitoring"))
