"""The real AWS CLI deploys the template to moto's CloudFormation on 127.0.0.1; github-config reads it.

This exercises what the offline tests cannot: that `housing infra deploy --run` is a command line the AWS CLI
accepts and that CloudFormation (moto's implementation) resolves the template into the trust and permission
policies the IAM evaluator was shown, and that github-config parses what the real CLI prints.

Moto's gaps (moto 5.2, measured): no AWS::IAM::OIDCProvider (so CreateGitHubOidcProvider=false here), and it
skips AWS::EKS::AccessEntry and AWS::S3::BucketPolicy; of the bucket it applies the encryption but not the
versioning or the public access block, of the repository the tag immutability but not the scan setting or the
lifecycle policy (those are proved on the template offline, tests/infra/test_template_security.py). It
returns no Outputs for stacks made through change sets (what `deploy` does), so github-config's happy path
reads a second stack made with `create-stack`; and it answers a second, unchanged `deploy` with an error
where AWS reports an empty change set, so idempotency is not tested here. Every request goes to 127.0.0.1
(endpoint override, and an unroutable HTTPS proxy in case anything tried to leave).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfn_support import REPO, ROOT, TEMPLATE
from iam_policy import Request, is_allowed

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0123"
PARAMETERS = {
    "GitHubRepository": REPO,
    "EksClusterName": "prod-cluster",
    "CreateGitHubOidcProvider": "false",
    "EksOidcIssuer": ISSUER,
}
GITHUB = "token.actions.githubusercontent.com"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def aws_json(env: dict[str, str], *args: str) -> Any:
    proc = run(env, "aws", *args, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def housing(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, str(Path(sys.executable).with_name("housing")), *args)


@pytest.fixture(scope="module")
def deployed(moto_env: dict[str, str]) -> dict[str, str]:
    params = [arg for key, value in PARAMETERS.items() for arg in ("-p", f"{key}={value}")]
    proc = housing(moto_env, "infra", "deploy", "--stack-name", "hm", *params, "--run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully created/updated stack - hm" in proc.stdout
    resources = aws_json(moto_env, "cloudformation", "list-stack-resources", "--stack-name", "hm")
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources["StackResourceSummaries"]}


def trust_and_policies(env: dict[str, str], role_name: str) -> tuple[dict, list[dict]]:
    role = aws_json(env, "iam", "get-role", "--role-name", role_name)["Role"]
    names = aws_json(env, "iam", "list-role-policies", "--role-name", role_name)["PolicyNames"]
    policies = [
        _document(aws_json(env, "iam", "get-role-policy", "--role-name", role_name, "--policy-name", name))
        for name in names
    ]
    return role["AssumeRolePolicyDocument"], policies


def _document(response: dict[str, Any]) -> dict[str, Any]:
    document = response["PolicyDocument"]
    # AWS returns an object; moto 5.2 a string holding the Python repr of the dict its CloudFormation built.
    return ast.literal_eval(document) if isinstance(document, str) else document


def github_token(sub: str) -> Request:
    provider = f"arn:aws:iam::123456789012:oidc-provider/{GITHUB}"
    return Request(
        "sts:AssumeRoleWithWebIdentity",
        "role",
        {"Federated": provider},
        {f"{GITHUB}:sub": sub, f"{GITHUB}:aud": "sts.amazonaws.com"},
    )


def test_deployed_roles_trust_and_allow_what_the_template_says(
    moto_env: dict[str, str], deployed: dict[str, str]
) -> None:
    bucket = deployed["DataBucket"]
    expected = {
        "CiRole": {"pull_request", "ref:refs/heads/main"},
        "DeployRole": {"ref:refs/heads/main", "environment:production", "environment:staging"},
        "RetrainRole": {"environment:retrain"},
    }
    contexts = {
        "pull_request",
        "ref:refs/heads/main",
        "environment:production",
        "environment:staging",
        "environment:retrain",
    }
    documents = {}
    for logical_id, subjects in expected.items():
        trust, policies = trust_and_policies(moto_env, deployed[logical_id])
        assert {c for c in contexts if is_allowed([trust], github_token(f"repo:{REPO}:{c}"))} == subjects
        documents[logical_id] = policies
    dvc_object = f"arn:aws:s3:::{bucket}/dvc/files/md5/ab/cdef"
    assert is_allowed(documents["CiRole"], Request("s3:GetObject", dvc_object))
    assert not is_allowed(documents["CiRole"], Request("s3:PutObject", dvc_object))
    assert is_allowed(documents["RetrainRole"], Request("s3:PutObject", dvc_object))
    assert not is_allowed(documents["DeployRole"], Request("s3:GetObject", dvc_object))
    repository = "arn:aws:ecr:eu-west-1:123456789012:repository/housing-mlops"
    assert is_allowed(documents["DeployRole"], Request("ecr:PutImage", repository))
    assert not is_allowed(documents["RetrainRole"], Request("ecr:PutImage", repository))
    assert deployed["ModelRoleProduction"] == "housing-model-production"
    trust, _ = trust_and_policies(moto_env, "housing-model-production")
    provider = f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"
    claims = {f"{ISSUER}:sub": "system:serviceaccount:housing-production:housing-model"}
    claims[f"{ISSUER}:aud"] = "sts.amazonaws.com"
    sa = Request("sts:AssumeRoleWithWebIdentity", "role", {"Federated": provider}, claims)
    assert is_allowed([trust], sa), "the JSON-string trust policy survives CloudFormation's Fn::Sub"


def test_deployed_repository_and_bucket_settings(moto_env: dict[str, str], deployed: dict[str, str]) -> None:
    repositories = aws_json(moto_env, "ecr", "describe-repositories", "--repository-names", "housing-mlops")
    (repository,) = repositories["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    encryption = aws_json(moto_env, "s3api", "get-bucket-encryption", "--bucket", deployed["DataBucket"])
    (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_github_config_reads_the_stack_through_the_aws_cli(
    moto_env: dict[str, str], deployed: dict[str, str]
) -> None:
    no_outputs = housing(moto_env, "infra", "github-config", "--stack-name", "hm")
    assert no_outputs.returncode == 2
    assert "stack hm lacks output(s) AwsRegion (AWS_REGION)" in no_outputs.stderr
    # Another repository name and no IRSA roles: names the first stack holds are not reused.
    direct = {**PARAMETERS, "EksOidcIssuer": "", "EcrRepositoryName": "housing-direct"}
    overrides = [f"ParameterKey={k},ParameterValue={v}" for k, v in direct.items()]
    created = run(moto_env, "aws", "cloudformation", "create-stack", "--stack-name", "hm-direct",
                  "--template-body", f"file://{TEMPLATE}", "--capabilities", "CAPABILITY_NAMED_IAM",
                  "--parameters", *overrides)  # fmt: skip
    assert created.returncode == 0, created.stderr
    proc = housing(moto_env, "infra", "github-config", "--stack-name", "hm-direct")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    role_arn = next(line.split()[5] for line in lines if line.startswith("gh variable set AWS_ROLE_ARN "))
    assert (
        aws_json(moto_env, "iam", "get-role", "--role-name", role_arn.rsplit("/", 1)[1])["Role"]["Arn"]
        == role_arn
    )
    assert f"gh variable set ECR_REPOSITORY --body housing-direct --repo {REPO}" in lines
    assert f"gh variable set EKS_CLUSTER --body prod-cluster --env production --repo {REPO}" in lines
