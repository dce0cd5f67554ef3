"""iam_policy.py against the IAM grammar's documented semantics, before it judges the stack."""

from __future__ import annotations

import pytest
from iam_policy import Request, evaluate, is_allowed, wildcard_match

BUCKET = "arn:aws:s3:::data"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(**fields: object) -> dict:
    return {"Effect": "Allow", **fields}


def deny(**fields: object) -> dict:
    return {"Effect": "Deny", **fields}


def test_wildcards_star_and_question_mark_only() -> None:
    assert wildcard_match("s3:Get*", "s3:GetObject")
    assert wildcard_match("arn:aws:s3:::data/dvc/*", "arn:aws:s3:::data/dvc/a/b")
    assert not wildcard_match("arn:aws:s3:::data/dvc/*", "arn:aws:s3:::data/mlflow/a")
    assert wildcard_match("v?", "v1")
    assert not wildcard_match("v?", "v10")
    assert not wildcard_match("a[b]", "ab"), "brackets are literal in IAM, not a character class"
    assert wildcard_match("a[b]", "a[b]")


def test_actions_case_insensitive_resources_case_sensitive() -> None:
    doc = policy(allow(Action="s3:getobject", Resource=f"{BUCKET}/dvc/*"))
    assert is_allowed([doc], Request("S3:GetObject", f"{BUCKET}/dvc/x"))
    assert not is_allowed([doc], Request("s3:GetObject", f"{BUCKET}/DVC/x"))


def test_explicit_deny_beats_allow_and_default_is_implicit_deny() -> None:
    allow_all_reads = policy(allow(Action="s3:GetObject", Resource=f"{BUCKET}/*"))
    deny_secret = policy(deny(Action="s3:*", Resource=f"{BUCKET}/secret/*"))
    assert (
        evaluate([allow_all_reads, deny_secret], Request("s3:GetObject", f"{BUCKET}/secret/k"))
        == "ExplicitDeny"
    )
    assert evaluate([allow_all_reads, deny_secret], Request("s3:GetObject", f"{BUCKET}/open/k")) == "Allow"
    assert evaluate([allow_all_reads], Request("s3:PutObject", f"{BUCKET}/open/k")) == "ImplicitDeny"


def test_not_action_and_not_resource() -> None:
    doc = policy(allow(NotAction="iam:*", NotResource=f"{BUCKET}/private/*"))
    assert is_allowed([doc], Request("s3:GetObject", f"{BUCKET}/x"))
    assert not is_allowed([doc], Request("iam:CreateUser", "*"))
    assert not is_allowed([doc], Request("s3:GetObject", f"{BUCKET}/private/x"))


def test_principal_types_must_match() -> None:
    provider = "arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com"
    trust = policy(allow(Principal={"Federated": provider}, Action="sts:AssumeRoleWithWebIdentity"))
    assert is_allowed([trust], Request("sts:AssumeRoleWithWebIdentity", "role", {"Federated": provider}))
    assert not is_allowed([trust], Request("sts:AssumeRoleWithWebIdentity", "role", {"AWS": provider}))
    assert not is_allowed(
        [trust], Request("sts:AssumeRoleWithWebIdentity", "role", {"Federated": provider + "x"})
    )
    anyone = policy(allow(Principal="*", Action="sts:AssumeRole"))
    assert is_allowed([anyone], Request("sts:AssumeRole", "role", {"AWS": "arn:aws:iam::2:root"}))


def test_string_equals_ors_values_and_ands_keys() -> None:
    doc = policy(
        allow(
            Action="sts:AssumeRoleWithWebIdentity",
            Condition={"StringEquals": {"k:aud": "sts.amazonaws.com", "k:sub": ["a", "b"]}},
        )
    )
    call = "sts:AssumeRoleWithWebIdentity"
    assert is_allowed([doc], Request(call, "r", context={"k:aud": "sts.amazonaws.com", "k:sub": "b"}))
    assert not is_allowed([doc], Request(call, "r", context={"k:aud": "other", "k:sub": "b"}))
    assert not is_allowed([doc], Request(call, "r", context={"k:aud": "sts.amazonaws.com", "k:sub": "c"}))
    assert not is_allowed([doc], Request(call, "r", context={"k:sub": "a"})), (
        "missing key: condition is false"
    )
    assert is_allowed([doc], Request(call, "r", context={"K:AUD": "sts.amazonaws.com", "K:Sub": "a"})), (
        "condition key names are case-insensitive"
    )
    assert not is_allowed([doc], Request(call, "r", context={"k:aud": "STS.amazonaws.com", "k:sub": "a"})), (
        "StringEquals values are case-sensitive"
    )


def test_string_like_wildcards_and_negated_operators_on_missing_keys() -> None:
    like = policy(
        allow(Action="s3:ListBucket", Resource=BUCKET, Condition={"StringLike": {"s3:prefix": "dvc/*"}})
    )
    assert is_allowed([like], Request("s3:ListBucket", BUCKET, context={"s3:prefix": "dvc/files/md5/"}))
    assert not is_allowed([like], Request("s3:ListBucket", BUCKET, context={"s3:prefix": "mlflow/"}))
    assert not is_allowed([like], Request("s3:ListBucket", BUCKET)), (
        "no prefix = list everything: not allowed"
    )
    not_equals = policy(
        deny(Action="*", Resource="*", Condition={"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}})
    )
    assert evaluate([not_equals], Request("s3:GetObject", BUCKET)) == "ExplicitDeny", (
        "a negated operator matches when the key is missing"
    )
    assert evaluate([not_equals], Request("s3:GetObject", BUCKET, context={"aws:PrincipalOrgID": "o-1"})) == (
        "ImplicitDeny"
    )
    not_like_two = policy(deny(Action="*", Resource="*", Condition={"StringNotLike": {"k": ["a*", "b*"]}}))
    assert evaluate([not_like_two], Request("x:y", "*", context={"k": "b1"})) == "ImplicitDeny", (
        "NOR of values"
    )
    assert evaluate([not_like_two], Request("x:y", "*", context={"k": "c1"})) == "ExplicitDeny"


def test_bool_numeric_null_and_if_exists() -> None:
    tls = policy(
        deny(Principal="*", Action="s3:*", Resource="*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    )
    assert evaluate([tls], Request("s3:GetObject", BUCKET, context={"aws:SecureTransport": "false"})) == (
        "ExplicitDeny"
    )
    assert (
        evaluate([tls], Request("s3:GetObject", BUCKET, context={"aws:SecureTransport": "true"}))
        == "ImplicitDeny"
    )
    assert evaluate([tls], Request("s3:GetObject", BUCKET)) == "ImplicitDeny", (
        "Bool on a missing key is false"
    )
    old = policy(deny(Action="s3:*", Resource="*", Condition={"NumericLessThan": {"s3:TlsVersion": "1.2"}}))
    assert (
        evaluate([old], Request("s3:GetObject", BUCKET, context={"s3:TlsVersion": "1.1"})) == "ExplicitDeny"
    )
    assert (
        evaluate([old], Request("s3:GetObject", BUCKET, context={"s3:TlsVersion": "1.3"})) == "ImplicitDeny"
    )
    null = policy(
        allow(Action="s3:GetObject", Resource="*", Condition={"Null": {"aws:TokenIssueTime": "true"}})
    )
    assert is_allowed([null], Request("s3:GetObject", BUCKET))
    assert not is_allowed([null], Request("s3:GetObject", BUCKET, context={"aws:TokenIssueTime": "t"}))
    if_exists = policy(allow(Action="ec2:Run", Resource="*", Condition={"StringEqualsIfExists": {"k": "v"}}))
    assert is_allowed([if_exists], Request("ec2:Run", "*"))
    assert not is_allowed([if_exists], Request("ec2:Run", "*", context={"k": "w"}))


def test_set_operators_on_multivalued_keys() -> None:
    any_value = policy(
        allow(Action="x:y", Resource="*", Condition={"ForAnyValue:StringLike": {"tags": "team-*"}})
    )
    assert is_allowed([any_value], Request("x:y", "*", context={"tags": ["other", "team-a"]}))
    assert not is_allowed([any_value], Request("x:y", "*", context={"tags": ["other"]}))
    assert not is_allowed([any_value], Request("x:y", "*")), "ForAnyValue on a missing key is false"
    all_values = policy(
        allow(Action="x:y", Resource="*", Condition={"ForAllValues:StringEquals": {"tags": ["a", "b"]}})
    )
    assert is_allowed([all_values], Request("x:y", "*", context={"tags": ["a", "b"]}))
    assert not is_allowed([all_values], Request("x:y", "*", context={"tags": ["a", "c"]}))
    assert is_allowed([all_values], Request("x:y", "*")), "ForAllValues on a missing key is true"


def test_unsupported_grammar_raises_instead_of_passing() -> None:
    with pytest.raises(NotImplementedError):
        evaluate([policy(allow(Action="x:y", Resource="*", Condition={"DateLessThan": {"k": "v"}}))],
                 Request("x:y", "*", context={"k": "v"}))  # fmt: skip
    with pytest.raises(NotImplementedError):
        evaluate([policy(allow(NotPrincipal={"AWS": "a"}, Action="x:y"))], Request("x:y", "*"))
    with pytest.raises(NotImplementedError):
        evaluate(
            [policy(allow(Action="s3:*", Resource="arn:aws:s3:::b/${aws:username}/*"))],
            Request("s3:GetObject", "x"),
        )
    with pytest.raises(NotImplementedError):
        evaluate([policy(allow(Action="x:y", Resource="*", Condition={"StringEquals": {"k": "v"}}))],
                 Request("x:y", "*", context={"k": ["v", "w"]}))  # fmt: skip
