"""The stack's outputs and the GitHub variables they become.

CloudFormation output names cannot contain underscores, so the mapping from output to GitHub variable is
this explicit table; tests/infra checks it against the template's Outputs (and their descriptions) and
against the variables the workflows read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from housing.config import Strict
from housing.infra.template import InfraError

ENVIRONMENTS: tuple[str, ...] = ("production", "staging", "retrain")
# Statuses whose outputs describe the resources that exist (UPDATE_ROLLBACK_COMPLETE: the last update was
# undone, the previous outputs stand).
USABLE_STATUSES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)


class GitHubVariable(Strict):
    """One stack output set as a GitHub Actions variable, at repository level or in the named environments."""

    output: str
    name: str
    environments: tuple[str, ...] = ()


GITHUB_VARIABLES: tuple[GitHubVariable, ...] = (
    GitHubVariable(output="AwsRegion", name="AWS_REGION"),
    GitHubVariable(output="AwsRoleArn", name="AWS_ROLE_ARN"),
    GitHubVariable(output="AwsDvcRoleArn", name="AWS_DVC_ROLE_ARN"),
    GitHubVariable(output="EcrRepository", name="ECR_REPOSITORY"),
    GitHubVariable(output="DvcRemoteUrl", name="DVC_REMOTE_URL"),
    GitHubVariable(output="MlflowArtifactsUri", name="MLFLOW_ARTIFACTS_URI"),
    GitHubVariable(output="EksCluster", name="EKS_CLUSTER", environments=("production", "staging")),
    GitHubVariable(output="RetrainAwsDvcRoleArn", name="AWS_DVC_ROLE_ARN", environments=("retrain",)),
    GitHubVariable(output="InferenceLogUri", name="INFERENCE_LOG_URI", environments=("retrain",)),
)
# Outputs that are not GitHub variables: the serving pods' IRSA roles (present only when the stack was given
# the cluster's OIDC issuer), keyed by the overlay whose ServiceAccount annotation takes them.
SERVICE_ACCOUNT_ROLE_OUTPUTS: dict[str, str] = {
    "ModelRoleArnStaging": "staging",
    "ModelRoleArnProduction": "production",
}


class _Aws(BaseModel):
    """Shapes of `aws cloudformation describe-stacks`: AWS adds fields over time, so extras are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Output(_Aws):
    key: str = Field(alias="OutputKey")
    value: str = Field(alias="OutputValue")


class _Parameter(_Aws):
    key: str = Field(alias="ParameterKey")
    value: str = Field("", alias="ParameterValue")


class _Stack(_Aws):
    name: str = Field(alias="StackName")
    status: str = Field(alias="StackStatus")
    parameters: tuple[_Parameter, ...] = Field((), alias="Parameters")
    outputs: tuple[_Output, ...] = Field((), alias="Outputs")


class _DescribeStacks(_Aws):
    stacks: tuple[_Stack, ...] = Field(alias="Stacks")


class StackOutputs(Strict):
    """What `housing infra github-config` needs from one deployed stack."""

    stack_name: str
    outputs: dict[str, str]
    parameters: dict[str, str]

    def value(self, output: str) -> str:
        return self.outputs[output]


def parse_describe_stacks(data: Any, source: str) -> StackOutputs:
    """Check a `describe-stacks` document: one usable stack with every output the GitHub variables need."""
    try:
        described = _DescribeStacks.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InfraError(
            f"{source}: not the JSON of `aws cloudformation describe-stacks` ({where}: {first['msg']})"
        ) from exc
    if len(described.stacks) != 1:
        raise InfraError(f"{source}: expected exactly one stack, found {len(described.stacks)}")
    stack = described.stacks[0]
    if stack.status not in USABLE_STATUSES:
        raise InfraError(
            f"{source}: stack {stack.name} is {stack.status}; its outputs are usable once it is "
            f"{' or '.join(sorted(USABLE_STATUSES))}"
        )
    outputs = {output.key: output.value for output in stack.outputs}
    missing = [f"{v.output} ({v.name})" for v in GITHUB_VARIABLES if not outputs.get(v.output)]
    if missing:
        raise InfraError(
            f"{source}: stack {stack.name} lacks output(s) {', '.join(missing)}; "
            f"is it the stack of infra/housing-mlops.yaml?"
        )
    return StackOutputs(
        stack_name=stack.name,
        outputs=outputs,
        parameters={parameter.key: parameter.value for parameter in stack.parameters},
    )


def read_stack_outputs(path: Path) -> StackOutputs:
    """Outputs from a file holding the JSON of `aws cloudformation describe-stacks`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InfraError(f"stack outputs file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InfraError(f"stack outputs file {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    return parse_describe_stacks(data, f"stack outputs file {path}")


def describe_stack(stack_name: str, region: str | None = None, aws: str = "aws") -> StackOutputs:
    """Outputs of a deployed stack, through the AWS CLI (its usual credentials chain)."""
    executable = shutil.which(aws)
    if executable is None:
        raise InfraError(f"`{aws}` not found on PATH: install the AWS CLI, or pass --stack-outputs FILE")
    command = [
        executable,
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        stack_name,
        "--output",
        "json",
    ]
    if region:
        command += ["--region", region]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise InfraError(
            f"aws cloudformation describe-stacks --stack-name {stack_name}: {proc.stderr.strip()}"
        )
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise InfraError(f"aws cloudformation describe-stacks --stack-name {stack_name}: not JSON") from exc
    return parse_describe_stacks(data, f"stack {stack_name}")
