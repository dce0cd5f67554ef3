"""`housing infra github-config`: stack outputs -> gh commands (printed, run by bash, --apply); errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfn_support import REPO, describe_stacks, resolve_stack
from fake_cli import calls, fake_cli
from typer.testing import CliRunner

from housing.cli import app
from housing.infra.github import apply_github_setup, plan_github_setup, render_script
from housing.infra.outputs import parse_describe_stacks, read_stack_outputs
from housing.infra.template import InfraError

ENVIRONMENTS = ("production", "staging", "retrain")


@pytest.fixture
def outputs_file(tmp_path: Path) -> Path:
    path = tmp_path / "stack.json"
    path.write_text(
        json.dumps(describe_stacks(resolve_stack(EksOidcIssuer="oidc.eks.eu-west-1.amazonaws.com/id/A1")))
    )
    return path


def variable_commands(argvs: list[list[str]]) -> set[tuple[str, str, str]]:
    """(name, value, environment or 'repository') of every `gh variable set` call."""
    found = set()
    for argv in argvs:
        if argv[:2] == ["variable", "set"]:
            assert argv[-2:] == ["--repo", REPO]
            env = argv[argv.index("--env") + 1] if "--env" in argv else "repository"
            found.add((argv[2], argv[argv.index("--body") + 1], env))
    return found


def test_plan_sets_every_variable_in_its_scope_after_creating_the_environments(outputs_file: Path) -> None:
    stack = read_stack_outputs(outputs_file)
    setup = plan_github_setup(stack)
    argvs = [list(c.argv[1:]) for c in setup.commands]
    env_calls = [a for a in argvs if a[0] == "api"]
    assert [a[3] for a in env_calls if a[2] == "PUT"] == [
        f"repos/{REPO}/environments/{e}" for e in ENVIRONMENTS
    ]
    assert [a[3] for a in env_calls if a[2] == "POST"] == [
        f"repos/{REPO}/environments/{e}/deployment-branch-policies" for e in ENVIRONMENTS
    ]
    for put in (a for a in env_calls if a[2] == "PUT"):
        assert "deployment_branch_policy[custom_branch_policies]=true" in put
    for post in (a for a in env_calls if a[2] == "POST"):
        assert post[-4:] == ["-f", "name=main", "-f", "type=branch"]
    assert argvs.index(env_calls[-1]) < min(i for i, a in enumerate(argvs) if a[0] == "variable"), (
        "environments exist before their variables are set"
    )
    out = stack.outputs
    assert variable_commands(argvs) == {
        ("AWS_REGION", "eu-west-1", "repository"),
        ("AWS_ROLE_ARN", out["AwsRoleArn"], "repository"),
        ("AWS_DVC_ROLE_ARN", out["AwsDvcRoleArn"], "repository"),
        ("ECR_REPOSITORY", "housing-mlops", "repository"),
        ("DVC_REMOTE_URL", out["DvcRemoteUrl"], "repository"),
        ("MLFLOW_ARTIFACTS_URI", out["MlflowArtifactsUri"], "repository"),
        ("EKS_CLUSTER", "prod-cluster", "production"),
        ("EKS_CLUSTER", "prod-cluster", "staging"),
        ("AWS_DVC_ROLE_ARN", out["RetrainAwsDvcRoleArn"], "retrain"),
        ("INFERENCE_LOG_URI", out["InferenceLogUri"], "retrain"),
    }
    manual = "\n".join(setup.manual_steps)
    expected = (
        "SLACK_WEBHOOK_URL",
        "RETRAIN_PR_TOKEN",
        "PROMETHEUS_URL",
        "PUSHGATEWAY_URL",
        "MLFLOW_TRACKING_URI",
    )
    expected += ("required reviewers", "branch protection", "infra/k8s/deployer-rbac.yaml")
    for item in expected:
        assert item in manual, item
    annotation = (
        "k8s/overlays/production: ServiceAccount housing-model annotation eks.amazonaws.com/role-arn: "
    )
    assert annotation + out["ModelRoleArnProduction"] in manual


def test_without_model_roles_the_manual_steps_say_so(tmp_path: Path) -> None:
    stack = parse_describe_stacks(describe_stacks(resolve_stack()), "test")
    manual = "\n".join(plan_github_setup(stack).manual_steps)
    assert "IRSA roles not created (stack parameter EksOidcIssuer empty)" in manual
    assert "k8s/overlays/production: ServiceAccount" not in manual


def test_the_printed_script_runs_the_same_commands_through_bash(outputs_file: Path, tmp_path: Path) -> None:
    """Quoting survives the shell: bash with a recording `gh` sees the planned argv, hostile values too."""
    data = json.loads(outputs_file.read_text())
    hostile = 's3://bucket/it\'s $(touch pwned) `id` "quoted" ;rm -rf ~'
    for output in data["Stacks"][0]["Outputs"]:
        if output["OutputKey"] == "DvcRemoteUrl":
            output["OutputValue"] = hostile
    setup = plan_github_setup(parse_describe_stacks(data, "test"))
    script = tmp_path / "setup.sh"
    script.write_text(render_script(setup, "test"))
    log = tmp_path / "gh.log"
    fake_cli(tmp_path / "bin", "gh", log)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert calls(log) == [list(c.argv[1:]) for c in setup.commands]
    assert ("DVC_REMOTE_URL", hostile, "repository") in variable_commands(calls(log))
    assert not (tmp_path / "pwned").exists()
    assert all(
        line.startswith("# ") for line in script.read_text().split("# Manual steps")[1].splitlines()[1:]
    )


def test_apply_runs_each_command_and_stops_at_the_first_failure(
    outputs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = plan_github_setup(read_stack_outputs(outputs_file))
    log = tmp_path / "gh.log"
    fake_cli(tmp_path / "bin", "gh", log, fail_when="INFERENCE_LOG_URI")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(InfraError, match=r"gh variable set INFERENCE_LOG_URI .* failed \(exit 1\): HTTP 404"):
        apply_github_setup(setup)
    assert calls(log)[-1][:3] == ["variable", "set", "INFERENCE_LOG_URI"]
    assert (
        len(calls(log))
        == [c.argv[3] if len(c.argv) > 3 else "" for c in setup.commands].index("INFERENCE_LOG_URI") + 1
    )
    log.unlink()
    fake_cli(tmp_path / "bin", "gh", log)
    assert apply_github_setup(setup) == len(setup.commands) == len(calls(log))


def test_apply_without_gh_says_what_to_install(outputs_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InfraError, match="`gh` not found on PATH: install the GitHub CLI"):
        apply_github_setup(plan_github_setup(read_stack_outputs(outputs_file)))


def broken(data: dict, tmp_path: Path) -> Path:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["Stacks"][0].update(
                Outputs=[o for o in d["Stacks"][0]["Outputs"] if o["OutputKey"] != "EcrRepository"]
            ),
            r"lacks output\(s\) EcrRepository \(ECR_REPOSITORY\); is it the stack of infra/housing-mlops",
        ),
        (
            lambda d: d["Stacks"][0].update(Outputs=[]),
            r"lacks output\(s\) AwsRegion \(AWS_REGION\), AwsRoleArn",
        ),
        (
            lambda d: d["Stacks"][0].update(StackStatus="ROLLBACK_COMPLETE"),
            r"stack housing-mlops is ROLLBACK_COMPLETE",
        ),
        (lambda d: d["Stacks"].append(d["Stacks"][0]), "expected exactly one stack, found 2"),
        (
            lambda d: d.pop("Stacks"),
            r"not the JSON of `aws cloudformation describe-stacks` \(Stacks: Field required\)",
        ),
        (lambda d: d["Stacks"][0].pop("StackStatus"), r"\(Stacks\.0\.StackStatus: Field required\)"),
    ],
)
def test_malformed_stack_descriptions_fail_naming_file_and_output(
    tmp_path: Path, mutate, message: str
) -> None:
    data = describe_stacks(resolve_stack())
    mutate(data)
    path = broken(data, tmp_path)
    with pytest.raises(InfraError, match=rf"stack outputs file {path}: .*{message}"):
        read_stack_outputs(path)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=rf"stack outputs file {tmp_path}/nope.json: No such file"):
        read_stack_outputs(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InfraError, match=r"bad.json: not JSON \(Expecting property name .* at line 1\)"):
        read_stack_outputs(tmp_path / "bad.json")


def test_the_repository_comes_from_the_stack_unless_given(outputs_file: Path) -> None:
    stack = read_stack_outputs(outputs_file)
    assert plan_github_setup(stack, "other-org/fork").commands[-1].argv[-1] == "other-org/fork"
    with pytest.raises(InfraError, match="GitHub repository 'not a repo': expected owner/name"):
        plan_github_setup(stack, "not a repo")
    stripped = stack.model_copy(update={"parameters": {}})
    with pytest.raises(InfraError, match="has no GitHubRepository parameter: pass --repo OWNER/NAME"):
        plan_github_setup(stripped)


def test_cli_prints_the_script_and_fails_in_one_line(outputs_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["infra", "github-config", "--stack-outputs", str(outputs_file)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#!/usr/bin/env bash\n")
    assert f"gh variable set EKS_CLUSTER --body prod-cluster --env staging --repo {REPO}" in result.output
    both = runner.invoke(
        app, ["infra", "github-config", "--stack-outputs", str(outputs_file), "--stack-name", "x"]
    )
    assert both.exit_code != 0
    assert "give exactly one of --stack-outputs FILE and --stack-name NAME" in str(both.exception)


def test_cli_reads_a_deployed_stack_through_the_aws_cli(outputs_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "aws.log"
    fake_cli(tmp_path / "bin", "aws", log, stdout=outputs_file.read_text())
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    housing = Path(sys.executable).with_name("housing")
    proc = subprocess.run(
        [str(housing), "infra", "github-config", "--stack-name", "housing-mlops", "--region", "eu-west-1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert calls(log) == [
        [
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            "housing-mlops",
            "--output",
            "json",
            "--region",
            "eu-west-1",
        ]
    ]
    assert "from stack housing-mlops" in proc.stdout
    fake_cli(tmp_path / "bin", "aws", log, fail_when="describe-stacks")
    failed = subprocess.run(
        [str(housing), "infra", "github-config", "--stack-name", "gone"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        "error: aws cloudformation describe-stacks --stack-name gone: HTTP 404: Not Found (simulated)"
    ]
