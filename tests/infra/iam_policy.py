"""An IAM policy evaluator written against the IAM JSON policy grammar, for offline checks of the template.

Covers what the template uses and a little more: Effect, Principal, Action/NotAction, Resource/NotResource,
Condition with the String*, Bool, Numeric*, Arn* and Null operators, the ForAnyValue:/ForAllValues: set
prefixes and the IfExists suffix. Semantics follow the IAM reference ("Policy evaluation logic",
"Condition operators", "Multivalued context keys"):

- an explicit Deny in any applicable statement wins; otherwise any Allow allows; otherwise implicit deny;
- wildcards: ``*`` any run of characters, ``?`` one character; actions match case-insensitively, resources
  case-sensitively; condition key names are case-insensitive, String values case-sensitive (except
  ``...IgnoreCase``);
- several keys in one operator, and several operators, are ANDed; several values for one key are ORed (for
  negated operators: the request value must match none of them);
- a key missing from the request: the condition is false, except negated operators (true), ``...IfExists``
  (true), ``ForAllValues:`` (true) and ``Null`` (which tests exactly that);
- a statement without Resource/NotResource (trust and other resource policies) applies to the resource the
  policy is attached to; a statement without Principal (identity policies) to the identity it is attached to.

Anything else in the grammar (an unknown operator, NotPrincipal, policy variables) raises NotImplementedError
so that a test cannot pass by silently ignoring it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["Allow", "ExplicitDeny", "ImplicitDeny"]
ContextValue = str | Sequence[str]

_STRING_OPERATORS = {
    "StringEquals": (False, False, False),  # (negated, wildcard, ignore case)
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False),
    "StringNotLike": (True, True, False),
    "ArnEquals": (
        False,
        True,
        False,
    ),  # ARN operators accept wildcards per segment; whole-string is equivalent
    "ArnLike": (False, True, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
}
_NUMERIC_OPERATORS = {
    "NumericEquals": (False, lambda a, b: a == b),
    "NumericNotEquals": (True, lambda a, b: a == b),
    "NumericLessThan": (False, lambda a, b: a < b),
    "NumericLessThanEquals": (False, lambda a, b: a <= b),
    "NumericGreaterThan": (False, lambda a, b: a > b),
    "NumericGreaterThanEquals": (False, lambda a, b: a >= b),
}


@dataclass(frozen=True)
class Request:
    """One API call: who (principal type -> ARN, for resource policies), what, on what, with which context."""

    action: str
    resource: str
    principal: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, ContextValue] = field(default_factory=dict)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if "${" in pattern:
        raise NotImplementedError(f"policy variables are not supported: {pattern}")
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return (
        re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None
    )


def as_list(value: Any) -> list[Any]:
    """A policy field that may be one value or a list, as a list."""
    return list(value) if isinstance(value, list | tuple) else [value]


def statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return as_list(policy["Statement"])


def _principal_matches(statement: Mapping[str, Any], request: Request) -> bool:
    if "NotPrincipal" in statement:
        raise NotImplementedError("NotPrincipal")
    if "Principal" not in statement:
        return True
    principal = statement["Principal"]
    if principal == "*":
        return True
    for kind, values in principal.items():
        if kind in request.principal and any(
            value == "*" or value == request.principal[kind] for value in as_list(values)
        ):
            return True
    return False


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(wildcard_match(p, action, ignore_case=True) for p in as_list(statement["Action"]))
    return not any(wildcard_match(p, action, ignore_case=True) for p in as_list(statement["NotAction"]))


def _resource_matches(statement: Mapping[str, Any], resource: str) -> bool:
    if "Resource" in statement:
        return any(wildcard_match(p, resource) for p in as_list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(wildcard_match(p, resource) for p in as_list(statement["NotResource"]))
    return True


def _lookup(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    for name, value in context.items():
        if name.lower() == key.lower():
            return [str(v) for v in as_list(value)]
    return None


def _single_value_matches(operator: str, expected: list[Any], actual: str) -> bool:
    """Does one request value satisfy the operator (ignoring negation) against any expected value?"""
    if operator in _STRING_OPERATORS:
        _, wildcard, ignore_case = _STRING_OPERATORS[operator]
        for value in map(str, expected):
            if wildcard and wildcard_match(value, actual, ignore_case=ignore_case):
                return True
            if not wildcard and (value.lower() == actual.lower() if ignore_case else value == actual):
                return True
        return False
    if operator == "Bool":
        return any(str(value).lower() == actual.lower() for value in expected)
    if operator in _NUMERIC_OPERATORS:
        _, compare = _NUMERIC_OPERATORS[operator]
        return any(compare(float(actual), float(value)) for value in expected)
    raise NotImplementedError(f"condition operator {operator}")


def _negated(operator: str) -> bool:
    if operator in _STRING_OPERATORS:
        return _STRING_OPERATORS[operator][0]
    if operator in _NUMERIC_OPERATORS:
        return _NUMERIC_OPERATORS[operator][0]
    if operator == "Bool":
        return False
    raise NotImplementedError(f"condition operator {operator}")


def _condition_holds(
    full_operator: str, key: str, expected: Any, context: Mapping[str, ContextValue]
) -> bool:
    expected_values = as_list(expected)
    actual = _lookup(context, key)
    set_prefix, _, operator = full_operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if operator == "Null":
        wants_absent = str(expected_values[0]).lower() == "true"
        return (actual is None) == wants_absent
    negated = _negated(operator)

    def value_ok(value: str) -> bool:
        hit = _single_value_matches(operator, expected_values, value)
        return not hit if negated else hit

    if set_prefix == "ForAnyValue":
        return actual is not None and any(value_ok(v) for v in actual)
    if set_prefix == "ForAllValues":
        return actual is None or all(value_ok(v) for v in actual)
    if set_prefix:
        raise NotImplementedError(f"set operator prefix {set_prefix}")
    if actual is None:
        return if_exists or negated
    if len(actual) != 1:
        raise NotImplementedError(
            f"{key} is multivalued: a single-valued operator ({full_operator}) needs a set prefix"
        )
    return value_ok(actual[0])


def _conditions_hold(statement: Mapping[str, Any], request: Request) -> bool:
    return all(
        _condition_holds(operator, key, expected, request.context)
        for operator, block in statement.get("Condition", {}).items()
        for key, expected in block.items()
    )


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    return (
        _principal_matches(statement, request)
        and _action_matches(statement, request.action)
        and _resource_matches(statement, request.resource)
        and _conditions_hold(statement, request)
    )


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """The decision of a set of policies that all apply to the request (same account)."""
    allowed = False
    for policy in policies:
        for statement in statements(policy):
            if not statement_applies(statement, request):
                continue
            if statement["Effect"] == "Deny":
                return "ExplicitDeny"
            if statement["Effect"] != "Allow":
                raise ValueError(f"Effect must be Allow or Deny, not {statement['Effect']!r}")
            allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def is_allowed(policies: Iterable[Mapping[str, Any]], request: Request) -> bool:
    return evaluate(policies, request) == "Allow"
