"""Stack outputs -> the `gh` commands that configure the repository and its environments.

Printed as a shell script by default (review it, then run it, or pass --apply). Settings the stack cannot know
(secrets, URLs of services outside it, people) are listed as comments: they stay manual.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence

from housing.config import Strict
from housing.infra.outputs import ENVIRONMENTS, GITHUB_VARIABLES, SERVICE_ACCOUNT_ROLE_OUTPUTS, StackOutputs
from housing.infra.template import InfraError

# Same rule as the template's GitHubRepository parameter (tests/infra keeps the two equal).
REPOSITORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"
DEPLOY_BRANCH = "main"

# Settings no stack output can provide: (what, where, how to get it).
MANUAL_SETTINGS: tuple[tuple[str, str, str], ...] = (
    (
        "secret SLACK_WEBHOOK_URL",
        "environments production, staging",
        "a Slack incoming webhook (canary results)",
    ),
    ("variable PROMETHEUS_URL", "environments production, staging", "Prometheus HTTP API the runner reaches"),
    ("variable PUSHGATEWAY_URL", "environment retrain", "Prometheus Pushgateway for the drift score"),
    ("variable MLFLOW_TRACKING_URI", "repository or environments", "the team's MLflow server"),
    ("secret MLFLOW_TRACKING_TOKEN", "repository or environments", "MLflow auth token for that server"),
    (
        "secret RETRAIN_PR_TOKEN",
        "environment retrain",
        "GitHub App installation token or fine-grained token (Contents, Pull requests: read and write)",
    ),
    (
        "variable CML_PUBLISH",
        "repository (optional)",
        "true only to have CML upload the report's plots to its asset host (default: linked artifact)",
    ),
)


class GhCommand(Strict):
    """One `gh` invocation and why it is there."""

    argv: tuple[str, ...]
    purpose: str


class GitHubSetup(Strict):
    """The commands `--apply` runs, in order, and the steps that remain manual."""

    repository: str
    commands: tuple[GhCommand, ...]
    manual_steps: tuple[str, ...]


def check_repository(repository: str) -> str:
    if not re.fullmatch(REPOSITORY_PATTERN, repository):
        raise InfraError(f"GitHub repository {repository!r}: expected owner/name, e.g. my-org/housing-mlops")
    return repository


def plan_github_setup(stack: StackOutputs, repository: str | None = None) -> GitHubSetup:
    """Commands for the environments and variables, from the stack's outputs (and its GitHubRepository)."""
    repo = repository or stack.parameters.get("GitHubRepository", "")
    if not repo:
        raise InfraError(
            f"stack {stack.stack_name} has no GitHubRepository parameter: pass --repo OWNER/NAME"
        )
    repo = check_repository(repo)
    commands: list[GhCommand] = []
    for environment in ENVIRONMENTS:
        commands += _environment_commands(repo, environment)
    for variable in GITHUB_VARIABLES:
        value = stack.value(variable.output)
        scopes: Sequence[str | None] = variable.environments or (None,)
        for environment in scopes:
            argv = ["gh", "variable", "set", variable.name, "--body", value]
            if environment:
                argv += ["--env", environment]
            where = f"environment {environment}" if environment else "repository"
            commands.append(
                GhCommand(
                    argv=(*argv, "--repo", repo), purpose=f"{variable.name} ({where}) <- {variable.output}"
                )
            )
    return GitHubSetup(repository=repo, commands=tuple(commands), manual_steps=_manual_steps(stack, repo))


def _environment_commands(repo: str, environment: str) -> list[GhCommand]:
    # Only `main` may deploy to (or retrain in) an environment: its OIDC `sub` is what the roles trust, so
    # the environment's branch rule is part of the trust boundary. GitHub answers 303 when the rule exists.
    endpoint = f"repos/{repo}/environments/{environment}"
    return [
        GhCommand(
            argv=(
                "gh",
                "api",
                "--method",
                "PUT",
                endpoint,
                "-F",
                "deployment_branch_policy[protected_branches]=false",
                "-F",
                "deployment_branch_policy[custom_branch_policies]=true",
            ),
            purpose=f"environment {environment}: deployments from selected branches only",
        ),
        GhCommand(
            argv=(
                "gh",
                "api",
                "--method",
                "POST",
                f"{endpoint}/deployment-branch-policies",
                "-f",
                f"name={DEPLOY_BRANCH}",
                "-f",
                "type=branch",
            ),
            purpose=f"environment {environment}: the selected branch is {DEPLOY_BRANCH}",
        ),
    ]


def _manual_steps(stack: StackOutputs, repo: str) -> tuple[str, ...]:
    steps = [f"{what} ({where}): {how}" for what, where, how in MANUAL_SETTINGS]
    steps += [
        f"environment production: add required reviewers (Settings > Environments) for a human gate before "
        f"the canary; `gh api` needs the reviewers' numeric IDs, so {repo}'s admins do it by hand",
        f"branch protection (or a ruleset) on {DEPLOY_BRANCH}: require the ci checks and a review",
        "cluster admin, once: kubectl apply -f infra/k8s/deployer-rbac.yaml (namespaces, deployer Role and "
        "RoleBinding for the EKS access entry's group housing-deployer)",
        f"DVC remote: dvc remote add -d --force storage {stack.value('DvcRemoteUrl')} && git add .dvc/config",
        f"MLflow server (outside this stack): --artifacts-destination {stack.value('MlflowArtifactsUri')}, "
        "with its own IAM role (read-write on that prefix)",
    ]
    roles = {env: stack.outputs.get(output) for output, env in SERVICE_ACCOUNT_ROLE_OUTPUTS.items()}
    if all(roles.values()):
        steps += [
            f"k8s/overlays/{env}: ServiceAccount housing-model annotation eks.amazonaws.com/role-arn: {arn}"
            for env, arn in roles.items()
        ]
    else:
        steps.append(
            "serving pods' IRSA roles not created (stack parameter EksOidcIssuer empty): nothing may write "
            "the inference log to S3 until they are"
        )
    return tuple(steps)


def render_script(setup: GitHubSetup, source: str) -> str:
    """A reviewable shell script: the commands, quoted, then the manual steps as comments."""
    lines = [
        "#!/usr/bin/env bash",
        f"# GitHub settings for {setup.repository} from {source} (`housing infra github-config`).",
        "# Needs `gh auth login` with admin rights on the repository.",
        "set -euo pipefail",
    ]
    for command in setup.commands:
        lines += [f"# {command.purpose}", shlex.join(command.argv)]
    lines += ["", "# Manual steps (no stack output can provide them):"]
    lines += [f"# - {step}" for step in setup.manual_steps]
    return "\n".join(lines) + "\n"


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run_gh(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


def apply_github_setup(setup: GitHubSetup, run: Runner = _run_gh, gh: str = "gh") -> int:
    """Run the commands in order (argv lists, no shell); stop at the first failure naming the command."""
    executable = shutil.which(gh)
    if executable is None:
        raise InfraError(
            f"`{gh}` not found on PATH: install the GitHub CLI, or run the printed script elsewhere"
        )
    for command in setup.commands:
        proc = run([executable, *command.argv[1:]])
        if proc.returncode != 0:
            raise InfraError(
                f"{shlex.join(command.argv)} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            )
    return len(setup.commands)
