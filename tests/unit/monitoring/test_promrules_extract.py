"""Extraction of rule groups from the PrometheusRule and of dashboard queries (single source)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from housing.errors import DataError
from housing.monitoring import promrules

ROOT = Path(__file__).resolve().parents[3]
RULE = ROOT / "k8s/monitoring/prometheusrule.yaml"
DASHBOARD = ROOT / "k8s/monitoring/dashboards/housing-model.json"


def test_rules_file_is_exactly_the_custom_resource_groups(tmp_path):
    assert promrules.main(["rules", str(RULE), str(tmp_path / "rules.yml")]) == 0
    extracted = yaml.safe_load((tmp_path / "rules.yml").read_text())
    assert extracted == {"groups": yaml.safe_load(RULE.read_text())["spec"]["groups"]}


def test_not_a_prometheusrule_is_refused(tmp_path):
    other = tmp_path / "x.yaml"
    other.write_text("kind: ConfigMap\n")
    with pytest.raises(DataError, match="expected kind PrometheusRule"):
        promrules.rule_groups(other)
    other.write_text("kind: PrometheusRule\nspec: {groups: []}\n")
    with pytest.raises(DataError, match="non-empty"):
        promrules.rule_groups(other)


def test_dashboard_queries_include_nested_row_panels_and_substitute_variables():
    dashboard = {
        "panels": [
            {"title": "a", "targets": [{"expr": 'rate(x{ns="$namespace"}[$__rate_interval])'}]},
            {
                "title": "row",
                "type": "row",
                "panels": [{"title": "b", "targets": [{"expr": "y"}, {"refId": "B"}]}],
            },
        ]
    }
    assert promrules.dashboard_queries(dashboard) == [
        ("a", 'rate(x{ns="$namespace"}[$__rate_interval])'),
        ("b", "y"),
    ]
    assert promrules.substitute_variables('rate(x{ns="$namespace", m="${model}"}[$__rate_interval])') == (
        'rate(x{ns="sample_namespace", m="sample_model"}[5m])'
    )


def test_dashboard_rules_cover_every_query(tmp_path):
    n_queries = len(promrules.dashboard_queries(json.loads(DASHBOARD.read_text())))
    promrules.main(["dashboard", str(DASHBOARD), str(tmp_path / "d.yml")])
    rules = yaml.safe_load((tmp_path / "d.yml").read_text())["groups"][0]["rules"]
    assert len(rules) == n_queries >= 9
    assert not any("$" in rule["expr"] for rule in rules)


def test_usage_error_exit_code(capsys):
    assert promrules.main(["bogus"]) == 2
