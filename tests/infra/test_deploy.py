"""`housing infra deploy`: parameters checked against the template, then `aws cloudformation deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfn_support import ROOT, TEMPLATE
from fake_cli import calls, fake_cli

from housing.infra.deploy import deploy_command, parse_assignments, read_parameters_file
from housing.infra.template import InfraError, check_parameters, load_template

REQUIRED = {"GitHubRepository": "my-org/housing-mlops", "EksClusterName": "prod-cluster"}


def test_the_command_is_the_documented_aws_cli_call() -> None:
    argv = deploy_command(
        {**REQUIRED, "CreateGitHubOidcProvider": "false"},
        stack_name="hm",
        region="eu-west-1",
        template=TEMPLATE,
    )
    assert argv == [
        "aws", "cloudformation", "deploy",
        "--template-file", str(TEMPLATE),
        "--stack-name", "hm",
        "--capabilities", "CAPABILITY_NAMED_IAM",
        "--no-fail-on-empty-changeset",
        "--tags", "project=housing-mlops",
        "--parameter-overrides",
        "CreateGitHubOidcProvider=false",
        "EksClusterName=prod-cluster",
        "GitHubRepository=my-org/housing-mlops",
        "--region", "eu-west-1",
    ]  # fmt: skip


ISSUER_WITH_SCHEME = "https://oidc.eks.eu-west-1.amazonaws.com/id/A"
BAD_PARAMETERS = [
    ({"GitHubRepository": "my-org/housing-mlops"}, r"stack parameter\(s\) EksClusterName required"),
    ({**REQUIRED, "GithubRepository": "x/y"}, r"unknown stack parameter\(s\) GithubRepository; known: "),
    ({**REQUIRED, "GitHubRepository": "housing"}, "GitHubRepository='housing': does not match owner/name"),
    ({**REQUIRED, "CreateGitHubOidcProvider": "yes"}, "CreateGitHubOidcProvider='yes': must be one of true"),
    ({**REQUIRED, "UntaggedImageExpiryDays": "0"}, "UntaggedImageExpiryDays='0': must be at least 1"),
    ({**REQUIRED, "UntaggedImageExpiryDays": "two"}, "UntaggedImageExpiryDays='two': must be a number"),
    ({**REQUIRED, "EksOidcIssuer": ISSUER_WITH_SCHEME}, "EksOidcIssuer=.*does not match empty, or oidc"),
    ({**REQUIRED, "GitHubSubjectRepository": "a/b"}, "GitHubSubjectRepository=.*OWNER@OWNER_ID/REPO@REPO_ID"),
    ({**REQUIRED, "EcrRepositoryName": "Housing"}, "EcrRepositoryName='Housing': does not match"),
]


@pytest.mark.parametrize(("parameters", "message"), BAD_PARAMETERS)
def test_bad_parameters_fail_before_aws_naming_parameter_and_rule(parameters: dict, message: str) -> None:
    with pytest.raises(InfraError, match=message):
        deploy_command(parameters, template=TEMPLATE)


def test_good_values_of_every_rule_pass() -> None:
    template = load_template(TEMPLATE)
    good = {
        **REQUIRED,
        "GitHubSubjectRepository": "my-org@123456/housing-mlops@456789",
        "EksOidcIssuer": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        "EcrRepositoryName": "team/housing-mlops",
        "UntaggedImageExpiryDays": "30",
        "CreateGitHubOidcProvider": "false",
    }
    assert check_parameters(template, good) == good


def test_assignments_parse_and_reject_duplicates_and_missing_equals() -> None:
    assert parse_assignments(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(InfraError, match="--param A given twice"):
        parse_assignments(["A=1", "A=2"])
    with pytest.raises(InfraError, match="--param 'A': expected Name=Value"):
        parse_assignments(["A"])


def test_the_example_parameters_file_sets_every_parameter_validly() -> None:
    example = read_parameters_file(ROOT / "infra" / "parameters.example.json")
    template = load_template(TEMPLATE)
    assert set(example) == set(template["Parameters"])
    assert check_parameters(template, example) == example


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"not JSON \(Expecting property name"),
        ('{"GitHubRepository": "a/b"}', r"expected a list of \{ParameterKey, ParameterValue\} objects"),
        ('[{"ParameterKey": "A"}]', "entry 0 must have exactly ParameterKey, ParameterValue"),
        (
            '[{"ParameterKey": "A", "ParameterValue": "1"}, {"ParameterKey": "A", "ParameterValue": "2"}]',
            "A given twice",
        ),
    ],
)
def test_bad_parameters_files_name_file_and_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "params.json"
    path.write_text(content)
    with pytest.raises(InfraError, match=rf"parameters file {path}: {message}"):
        read_parameters_file(path)
    with pytest.raises(InfraError, match=rf"parameters file {tmp_path}/none.json: No such file"):
        read_parameters_file(tmp_path / "none.json")


def test_template_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=rf"template {tmp_path}/none.yaml: No such file"):
        load_template(tmp_path / "none.yaml")
    (tmp_path / "t.yaml").write_text("Resources: {}\n")
    with pytest.raises(InfraError, match=r"t\.yaml: no Parameters section"):
        load_template(tmp_path / "t.yaml")
    (tmp_path / "u.yaml").write_text("Parameters: [\n")
    with pytest.raises(InfraError, match=r"u\.yaml: not valid YAML"):
        load_template(tmp_path / "u.yaml")


def test_cli_prints_by_default_and_runs_aws_with_run(tmp_path: Path) -> None:
    log = tmp_path / "aws.log"
    fake_cli(tmp_path / "bin", "aws", log)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AWS_REGION", None)
    housing = str(Path(sys.executable).with_name("housing"))
    args = [
        housing,
        "infra",
        "deploy",
        "-p",
        "GitHubRepository=my-org/housing-mlops",
        "-p",
        "EksClusterName=c1",
    ]
    printed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("aws cloudformation deploy --template-file infra/housing-mlops.yaml ")
    from_file = [
        housing,
        "infra",
        "deploy",
        "--parameters-file",
        "infra/parameters.example.json",
        "-p",
        "EksClusterName=c2",
    ]
    merged = subprocess.run(
        from_file, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert merged.returncode == 0, merged.stderr
    assert " EksClusterName=c2 " in merged.stdout, "-p wins over the file"
    assert " UntaggedImageExpiryDays=14" in merged.stdout
    assert not log.exists(), "nothing runs without --run"
    ran = subprocess.run(
        [*args, "--run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    (argv,) = calls(log)
    assert argv[:2] == ["cloudformation", "deploy"]
    assert argv[-2:] == ["EksClusterName=c1", "GitHubRepository=my-org/housing-mlops"]
    fake_cli(tmp_path / "bin", "aws", log, fail_when="deploy")
    failed = subprocess.run(
        [*args, "--run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert failed.returncode == 2
    assert failed.stderr.strip().endswith(
        "error: aws cloudformation deploy failed (exit 1); see its output above"
    )
    bad_args = [*args[:-1], "EksClusterName=bad name", "--run"]
    bad = subprocess.run(bad_args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: stack parameter EksClusterName='bad name': does not match an EKS cluster name "
        "(letters, digits, - and _; 100 at most)"
    ]
    assert len(calls(log)) == 2, "the bad call never reached aws"
