"""Read the CloudFormation template and check stack parameters against its own rules.

The template is the single source of truth for parameter names, patterns and allowed values: the deploy
command validates what it is given against ``Parameters`` before the AWS CLI ever sees it, so a typo fails
here naming the parameter and the rule instead of minutes later as a rolled-back stack.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from housing.errors import HousingError

DEFAULT_TEMPLATE = Path("infra/housing-mlops.yaml")


class InfraError(HousingError):
    """The template, a stack parameter, the stack's outputs or a CLI call (aws, gh) is unusable."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags (``!Ref``, ``!Sub``...) as their long form."""


def _intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template as plain data, intrinsic functions in their long form (``{"Fn::Sub": ...}``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InfraError(f"template {path}: {exc.strerror}") from exc
    try:
        # _CfnLoader is a SafeLoader that only adds the CloudFormation tags: no arbitrary objects.
        doc = yaml.load(text, Loader=_CfnLoader)  # noqa: S506  # nosec B506
    except yaml.YAMLError as exc:
        raise InfraError(f"template {path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("Parameters"), dict):
        raise InfraError(f"template {path}: no Parameters section")
    return doc


def check_parameters(template: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """Return ``values`` if every key is a template parameter and every value keeps its rules.

    Parameters left out keep their default (or, on an update, the stack's current value); required ones
    (no Default) must be given.
    """
    declared: dict[str, dict[str, Any]] = template["Parameters"]
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InfraError(
            f"unknown stack parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(declared))}"
        )
    missing = sorted(name for name, spec in declared.items() if "Default" not in spec and name not in values)
    if missing:
        raise InfraError(f"stack parameter(s) {', '.join(missing)} required (the template gives no default)")
    for name, value in values.items():
        _check_one(name, value, declared[name])
    return values


def _check_one(name: str, value: str, spec: dict[str, Any]) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        raise InfraError(f"stack parameter {name}={value!r}: must be one of {', '.join(map(str, allowed))}")
    pattern = spec.get("AllowedPattern")
    # CloudFormation matches the whole value (Java regex semantics); the template's patterns are anchored.
    if pattern is not None and not re.fullmatch(pattern, value):
        rule = spec.get("ConstraintDescription", f"pattern {pattern}")
        raise InfraError(f"stack parameter {name}={value!r}: does not match {rule}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError as exc:
            raise InfraError(f"stack parameter {name}={value!r}: must be a number") from exc
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise InfraError(f"stack parameter {name}={value!r}: must be at least {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise InfraError(f"stack parameter {name}={value!r}: must be at most {spec['MaxValue']}")
