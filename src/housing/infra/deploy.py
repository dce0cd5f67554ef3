"""`aws cloudformation deploy` of infra/housing-mlops.yaml: one idempotent command, create or update.

The command line follows the AWS CLI reference of `aws cloudformation deploy` (create a change set, execute
it, wait): `--parameter-overrides Key=Value ...` (parameters left out keep their default, or on an update
the stack's current value), `--capabilities CAPABILITY_NAMED_IAM` (the IRSA roles have fixed names),
`--no-fail-on-empty-changeset` (re-running with nothing to change succeeds), `--tags Key=Value`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from housing.infra.template import DEFAULT_TEMPLATE, InfraError, check_parameters, load_template

DEFAULT_STACK_NAME = "housing-mlops"
STACK_TAGS = ("project=housing-mlops",)


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["Key=Value", ...]`` -> dict; a repeated key or a missing ``=`` is an error naming it."""
    values: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise InfraError(f"--param {assignment!r}: expected Name=Value")
        if key in values:
            raise InfraError(f"--param {key} given twice")
        values[key] = value
    return values


def read_parameters_file(path: Path) -> dict[str, str]:
    """A parameters file in CloudFormation's format, ``[{"ParameterKey": ..., "ParameterValue": ...}, ...]``
    (what `create-stack --parameters file://` and `deploy --parameter-overrides file://` read too)."""
    try:
        entries = json.loads(path.read_text())
    except OSError as exc:
        raise InfraError(f"parameters file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InfraError(f"parameters file {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(entries, list):
        raise InfraError(
            f"parameters file {path}: expected a list of {{ParameterKey, ParameterValue}} objects"
        )
    values: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"ParameterKey", "ParameterValue"}:
            raise InfraError(
                f"parameters file {path}: entry {index} must have exactly ParameterKey, ParameterValue"
            )
        key = str(entry["ParameterKey"])
        if key in values:
            raise InfraError(f"parameters file {path}: {key} given twice")
        values[key] = str(entry["ParameterValue"])
    return values


def deploy_command(
    parameters: dict[str, str],
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    region: str | None = None,
    template: Path = DEFAULT_TEMPLATE,
    aws: str = "aws",
) -> list[str]:
    """The `aws cloudformation deploy` argv, after checking ``parameters`` against the template."""
    check_parameters(load_template(template), parameters)
    argv = [
        aws, "cloudformation", "deploy",
        "--template-file", str(template),
        "--stack-name", stack_name,
        "--capabilities", "CAPABILITY_NAMED_IAM",
        "--no-fail-on-empty-changeset",
        "--tags", *STACK_TAGS,
        "--parameter-overrides", *(f"{key}={value}" for key, value in sorted(parameters.items())),
    ]  # fmt: skip
    if region:
        argv += ["--region", region]
    return argv


def run_deploy(argv: list[str]) -> None:
    """Run the command with the caller's AWS credentials; its own output streams to the terminal."""
    executable = shutil.which(argv[0])
    if executable is None:
        raise InfraError(f"`{argv[0]}` not found on PATH: install the AWS CLI (v2 recommended)")
    proc = subprocess.run([executable, *argv[1:]], check=False)
    if proc.returncode != 0:
        raise InfraError(f"aws cloudformation deploy failed (exit {proc.returncode}); see its output above")
