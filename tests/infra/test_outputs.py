"""Stack outputs <-> GitHub variables: the table agrees with the template, the brief and the workflows."""

from __future__ import annotations

import re

import pytest
from cfn_support import ROOT, Stack, resolve_stack
from iam_policy import Request, is_allowed

from housing.infra.github import MANUAL_SETTINGS, REPOSITORY_PATTERN
from housing.infra.outputs import GITHUB_VARIABLES, SERVICE_ACCOUNT_ROLE_OUTPUTS

# What the workflows expect (docs/gitops.md): variable -> where it is set.
EXPECTED_SETTINGS = {
    ("AWS_REGION", "repository"),
    ("AWS_ROLE_ARN", "repository"),
    ("AWS_DVC_ROLE_ARN", "repository"),
    ("ECR_REPOSITORY", "repository"),
    ("DVC_REMOTE_URL", "repository"),
    ("MLFLOW_ARTIFACTS_URI", "repository"),
    ("EKS_CLUSTER", "production"),
    ("EKS_CLUSTER", "staging"),
    ("AWS_DVC_ROLE_ARN", "retrain"),
    ("INFERENCE_LOG_URI", "retrain"),
}
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/ABC123"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return resolve_stack(EksOidcIssuer=ISSUER)


def settings() -> set[tuple[str, str]]:
    return {(v.name, env) for v in GITHUB_VARIABLES for env in (v.environments or ("repository",))}


def test_the_table_sets_exactly_the_variables_the_workflows_expect() -> None:
    assert settings() == EXPECTED_SETTINGS
    assert len({v.output for v in GITHUB_VARIABLES}) == len(GITHUB_VARIABLES), "one output per row"


def test_every_template_output_is_in_the_table_and_vice_versa(stack: Stack) -> None:
    declared = set(stack.template["Outputs"])
    assert declared == {v.output for v in GITHUB_VARIABLES} | set(SERVICE_ACCOUNT_ROLE_OUTPUTS)
    assert set(resolve_stack().outputs) == {v.output for v in GITHUB_VARIABLES}, (
        "without an issuer, exactly the variable outputs exist"
    )
    assert set(stack.outputs) == declared


def test_output_descriptions_name_their_variable_and_scope(stack: Stack) -> None:
    outputs = stack.template["Outputs"]
    for variable in GITHUB_VARIABLES:
        if variable.environments:
            plural = "environments" if len(variable.environments) > 1 else "environment"
            scope = f"{plural} {', '.join(variable.environments)}"
        else:
            scope = "repository"
        assert outputs[variable.output]["Description"].startswith(
            f"GitHub variable {variable.name} ({scope})"
        )
    for output in SERVICE_ACCOUNT_ROLE_OUTPUTS:
        assert outputs[output]["Description"].startswith("Not a GitHub variable")


def test_output_values_point_at_the_right_resources(stack: Stack) -> None:
    bucket = stack.resources["DataBucket"]
    name = stack.physical_id("DataBucket")
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert stack.outputs == {
        "AwsRegion": "eu-west-1",
        "AwsRoleArn": stack.arn("DeployRole"),
        "AwsDvcRoleArn": stack.arn("CiRole"),
        "RetrainAwsDvcRoleArn": stack.arn("RetrainRole"),
        "EcrRepository": "housing-mlops",
        "DvcRemoteUrl": f"s3://{name}/dvc",
        "MlflowArtifactsUri": f"s3://{name}/mlflow",
        "EksCluster": "prod-cluster",
        "InferenceLogUri": f"s3://{name}/inference-log/production/",
        "ModelRoleArnStaging": "arn:aws:iam::123456789012:role/housing-model-staging",
        "ModelRoleArnProduction": "arn:aws:iam::123456789012:role/housing-model-production",
    }


def test_what_production_pods_write_is_what_the_retrain_role_reads_under_inference_log_uri(
    stack: Stack,
) -> None:
    key = stack.outputs["InferenceLogUri"].replace("s3://", "arn:aws:s3:::") + "pod-7/00001.jsonl"
    secure = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
    bucket_policy = stack.bucket_policy()
    writer = [*stack.role_policies("ModelRoleProduction"), bucket_policy]
    reader = [*stack.role_policies("RetrainRole"), bucket_policy]
    assert is_allowed(writer, Request("s3:PutObject", key, context=secure))
    assert is_allowed(reader, Request("s3:GetObject", key, context=secure))
    staging = [*stack.role_policies("ModelRoleStaging"), bucket_policy]
    assert not is_allowed(staging, Request("s3:PutObject", key, context=secure)), (
        "staging stays out of the URI"
    )


def test_every_variable_and_secret_the_workflows_read_is_either_generated_or_listed_as_manual() -> None:
    referenced = set()
    for path in (ROOT / ".github").rglob("*.yml"):
        referenced |= set(re.findall(r"\b(vars|secrets)\.([A-Z][A-Z0-9_]*)", path.read_text()))
    assert referenced, "the workflows reference no variables: wrong directory?"
    generated = {("vars", v.name) for v in GITHUB_VARIABLES}
    manual = {tuple(what.split(" ", 1)) for what, _, _ in MANUAL_SETTINGS}
    manual = {("vars" if kind == "variable" else "secrets", name) for kind, name in manual}
    automatic = {("secrets", "GITHUB_TOKEN")}
    assert referenced - generated - manual - automatic == set()


def test_the_repository_rule_is_the_templates(stack: Stack) -> None:
    assert stack.template["Parameters"]["GitHubRepository"]["AllowedPattern"] == REPOSITORY_PATTERN


def test_the_table_in_docs_infra_md_is_this_table() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \| `([A-Z_]+)`[^|]*\| ([^|]+) \|$", (ROOT / "docs" / "infra.md").read_text(), re.M
    )
    documented = {(output, name, where.strip()) for output, name, where in rows}
    expected = set()
    for v in GITHUB_VARIABLES:
        plural = "environments" if len(v.environments) > 1 else "environment"
        where = (
            f"{plural} {', '.join(f'`{env}`' for env in v.environments)}" if v.environments else "repository"
        )
        expected.add((v.output, v.name, where))
    assert documented == expected
