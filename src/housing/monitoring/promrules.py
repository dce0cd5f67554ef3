"""Keep Prometheus rules and dashboard queries checkable by ``promtool`` from a single source.

- ``rules``: the PrometheusRule custom resource (k8s/monitoring/prometheusrule.yaml) is the only copy of the
  alert rules; its ``spec.groups`` is exactly a Prometheus rules file, extracted here for
  ``promtool check rules`` / ``promtool test rules`` and for a plain (non-Operator) Prometheus.
- ``dashboard``: every PromQL expression of the Grafana dashboard wrapped as a recording rule, so that
  ``promtool check rules`` parses each one (Grafana variables replaced by sample values first).

Usage: ``python -m housing.monitoring.promrules rules|dashboard SOURCE DEST``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from housing.errors import DataError

# Grafana template variables -> values that make the expression valid PromQL.
GRAFANA_SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "${datasource}": "prometheus",
}
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")


def rule_groups(prometheusrule_path: Path) -> dict[str, Any]:
    """``{"groups": [...]}`` from a PrometheusRule manifest (error if it is not one)."""
    try:
        doc = yaml.safe_load(prometheusrule_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{prometheusrule_path}: cannot read YAML ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "PrometheusRule":
        raise DataError(f"{prometheusrule_path}: expected kind PrometheusRule")
    groups = (doc.get("spec") or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        raise DataError(f"{prometheusrule_path}: spec.groups must be a non-empty list")
    return {"groups": groups}


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows' nested panels included."""
    queries = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        queries += [(panel.get("title", ""), t["expr"]) for t in panel.get("targets", []) if t.get("expr")]
    return queries


def substitute_variables(expr: str) -> str:
    """Replace Grafana's built-in and dashboard variables with literal values."""
    for variable, value in GRAFANA_SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return _VARIABLE.sub(lambda m: f"sample_{m.group(1)}", expr)


def dashboard_rules(dashboard_path: Path) -> dict[str, Any]:
    """A rules file with one recording rule per dashboard query (for ``promtool check rules``)."""
    dashboard = json.loads(dashboard_path.read_text())
    rules = [
        {
            "record": f"dashboard:panel_query:{i}",
            "expr": substitute_variables(expr),
            "labels": {"panel": title},
        }
        for i, (title, expr) in enumerate(dashboard_queries(dashboard))
    ]
    return {"groups": [{"name": f"dashboard-{dashboard.get('uid', 'unknown')}", "rules": rules}]}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ("rules", "dashboard"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, source, dest = args[0], Path(args[1]), Path(args[2])
    content = rule_groups(source) if kind == "rules" else dashboard_rules(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
