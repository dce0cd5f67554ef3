"""Self-tests of the act harness on small workflows written here (not the project's).

Real: act, actions/checkout, actions/setup-python, peter-evans/create-pull-request, git, curl.
Stand-ins: the upload/download-artifact actions and the artifact store, GitHub's REST API.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from act import STANDIN_PINS, ActRunner
from scenario_repo import ScenarioRepo

CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"  # v7.0.1
SETUP_PYTHON = "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97"  # v7.0.0
CREATE_PULL_REQUEST = "peter-evans/create-pull-request@5f6978faf089d4d20b00c7766989d076bb2fc7f1"  # v8.1.1
UPLOAD, DOWNLOAD = STANDIN_PINS["upload-artifact"], STANDIN_PINS["download-artifact"]
# Over one 8 MiB block of the blob upload, random so zip cannot shrink it: blocks are reassembled in order.
BIG_FILE = random.Random(0).randbytes(9_000_000)

ARTIFACTS_WORKFLOW = f"""
name: harness-artifacts
on: push
permissions: {{}}
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: {CHECKOUT}
      - uses: {SETUP_PYTHON}
        with:
          python-version: "3.11"
      - name: Make the files
        run: |
          python - <<'EOF'
          import pathlib, random
          out = pathlib.Path("out")
          (out / "sub").mkdir(parents=True)
          (out / "a.txt").write_text("alpha\\n")
          (out / "sub" / "b.txt").write_text("beta\\n")
          (out / ".hidden").write_text("hidden\\n")
          (out / "skip.log").write_text("excluded\\n")
          (out / "big.bin").write_bytes(random.Random(0).randbytes(9_000_000))
          pathlib.Path("extra.txt").write_text("first\\n")
          EOF
          echo "python=$(command -v python)"
      - id: upload
        uses: {UPLOAD}
        with:
          name: out
          path: |
            out/
            !out/*.log
          if-no-files-found: error
          retention-days: 3
      - name: The outputs name the artifact
        env:
          ID: ${{{{ steps.upload.outputs.artifact-id }}}}
          URL: ${{{{ steps.upload.outputs.artifact-url }}}}
        run: |
          [[ "$ID" =~ ^[0-9]+$ ]]
          [[ "$URL" == "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/artifacts/$ID" ]]
      - uses: {UPLOAD}
        with:
          name: extra-1
          path: extra.txt
      - id: duplicate
        name: A second artifact of one name is refused
        continue-on-error: true
        uses: {UPLOAD}
        with:
          name: extra-1
          path: extra.txt
      - uses: {UPLOAD}
        with:
          name: extra-2
          path: extra.txt
      - run: echo replaced > extra.txt
      - name: overwrite replaces it
        uses: {UPLOAD}
        with:
          name: extra-2
          path: extra.txt
          overwrite: true
      - id: missing
        name: Nothing to upload fails with if-no-files-found error
        continue-on-error: true
        uses: {UPLOAD}
        with:
          name: missing
          path: no-such-dir/
          if-no-files-found: error
      - id: unsupported
        name: What the stand-in does not implement fails loudly
        continue-on-error: true
        uses: {UPLOAD}
        with:
          name: raw
          path: extra.txt
          archive: false
      - name: Expected failures
        env:
          DUPLICATE: ${{{{ steps.duplicate.outcome }}}}
          MISSING: ${{{{ steps.missing.outcome }}}}
          UNSUPPORTED: ${{{{ steps.unsupported.outcome }}}}
        run: test "$DUPLICATE/$MISSING/$UNSUPPORTED" = failure/failure/failure
      - name: Skipped step
        if: github.event_name == 'schedule'
        run: exit 1

  check:
    needs: build
    runs-on: ubuntu-24.04
    steps:
      - id: one
        uses: {DOWNLOAD}
        with:
          name: out
          path: got
      - uses: {DOWNLOAD}
        with:
          pattern: extra-*
          path: extras
      - name: Content as uploaded
        env:
          DOWNLOAD_PATH: ${{{{ steps.one.outputs.download-path }}}}
        run: |
          [[ "$DOWNLOAD_PATH" == "$GITHUB_WORKSPACE/got" ]]
          (cd got && find . -type f | sort) > listing.txt
          printf './a.txt\\n./big.bin\\n./sub/b.txt\\n' | diff - listing.txt
          test "$(cat got/sub/b.txt)" = beta
          test "$(sha256sum < got/big.bin | cut -d' ' -f1)" = {hashlib.sha256(BIG_FILE).hexdigest()}
          test "$(cat extras/extra-1/extra.txt)/$(cat extras/extra-2/extra.txt)" = first/replaced

  never:
    if: github.event_name == 'schedule'
    runs-on: ubuntu-24.04
    steps:
      - run: exit 1
"""


def _add_workflow(repo: ScenarioRepo, name: str, text: str) -> str:
    path = f".github/workflows/{name}"
    repo.commit(f"harness workflow {name}", {path: text}, branch="main")
    return path


def test_artifacts_move_between_jobs_and_setup_python_uses_the_tool_cache(
    scenario_repo: ScenarioRepo, run_act: ActRunner
) -> None:
    workflow = _add_workflow(scenario_repo, "harness-artifacts.yml", ARTIFACTS_WORKFLOW)

    result = run_act(scenario_repo, "push", workflow, event_payload=scenario_repo.push_event())

    assert result.returncode == 0
    assert result.results == {"build": "success", "check": "success", "never": "skipped"}
    build = result.job("build")
    outcomes = [build.step(key) for key in ("duplicate", "missing", "unsupported", "Skipped step")]
    assert outcomes == ["failure", "failure", "failure", "skipped"]
    assert "input 'archive: false' is not supported by this stand-in" in result.log
    assert f"python={run_act.services.toolcache}/Python/3.11." in build.text  # setup-python found the cache
    store = run_act.services.artifacts
    assert sorted(a.name for a in store.finalized()) == ["extra-1", "extra-2", "out"]
    out = store.artifact("out")
    assert out.files() == {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n", "big.bin": BIG_FILE}
    assert out.digest == f"sha256:{hashlib.sha256(out.content or b'').hexdigest()}"
    expires = datetime.fromisoformat(str(out.expires_at).replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=10)
    assert store.artifact("extra-2").files() == {"extra.txt": b"replaced\n"}
    assert ("POST", "CreateArtifact", 409) in store.requests  # the refused duplicate


COMMENT_WORKFLOW = """
name: harness-comment
on: pull_request
permissions: {}
jobs:
  comment:
    runs-on: ubuntu-24.04
    permissions:
      pull-requests: write
    steps:
      - name: Post, then edit, one comment with curl
        env:
          GH_TOKEN: ${{ github.token }}
          NUMBER: ${{ github.event.pull_request.number }}
        run: |
          api() { curl -sS --fail-with-body -H "Authorization: Bearer $GH_TOKEN" \\
            -H "Accept: application/vnd.github+json" "$@"; }
          id=$(api -X POST -d '{"body": "draft"}' \\
            "$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/issues/$NUMBER/comments" | jq -r .id)
          api -X PATCH -d '{"body": "report for '"$GITHUB_HEAD_REF"'"}' \\
            "$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/issues/comments/$id" > /dev/null
"""


def test_a_job_comments_on_the_pull_request_through_the_api_stand_in(
    scenario_repo: ScenarioRepo, run_act: ActRunner
) -> None:
    workflow = _add_workflow(scenario_repo, "harness-comment.yml", COMMENT_WORKFLOW)
    scenario_repo.commit("an experiment", {"notes.txt": "try\n"}, branch="experiment")
    api = run_act.services.api
    pull = api.open_pull_request("experiment")

    result = run_act(
        scenario_repo, "pull_request", workflow, event_payload=scenario_repo.pull_request_event(pull)
    )

    assert result.results == {"comment": "success"}
    comments = api.comments_on(pull["number"])
    assert [(c["body"], c["user"]["login"]) for c in comments] == [
        ("report for experiment", "github-actions[bot]")
    ]
    calls = [(r.method, r.route, r.status, r.authorization) for r in api.requests]
    token = f"Bearer {api.actions_token}"
    assert calls == [("POST", "create_comment", 201, token), ("PATCH", "update_comment", 200, token)]
    assert api.unexpected == []


PULL_REQUEST_WORKFLOW = f"""
name: harness-pull-request
on: workflow_dispatch
permissions: {{}}
jobs:
  propose:
    runs-on: ubuntu-24.04
    permissions:
      contents: write
      pull-requests: write
    steps:
      - uses: {CHECKOUT}
      - name: Change a tracked file
        run: |
          printf 'retrained: true\\n' >> params.yaml
      - id: cpr
        uses: {CREATE_PULL_REQUEST}
        with:
          token: ${{{{ secrets.PR_TOKEN || github.token }}}}
          branch: harness/retrain
          commit-message: "retrain: new model"
          title: Retrained model
          body: made by the harness self-test
          labels: retrain
      - run: test "${{{{ steps.cpr.outputs.pull-request-operation }}}}" = created
"""


@pytest.mark.parametrize("token", ["personal", "job"])
def test_create_pull_request_pushes_the_branch_and_opens_the_pull_request(
    scenario_repo: ScenarioRepo, run_act: ActRunner, token: str
) -> None:
    """A user's token opens the pull request; the job token is refused (GitHub's default setting)."""
    workflow = _add_workflow(scenario_repo, "harness-pull-request.yml", PULL_REQUEST_WORKFLOW)
    api = run_act.services.api
    secrets = {"PR_TOKEN": api.add_user("retrain-bot")} if token == "personal" else {}

    result = run_act(scenario_repo, "workflow_dispatch", workflow, secrets=secrets)

    assert result.results == {"propose": "success" if token == "personal" else "failure"}
    branch = scenario_repo.origin_refs().get("harness/retrain")
    assert branch is not None  # pushed with git before the API call, as on GitHub
    assert scenario_repo.origin_changed_files("harness/retrain") == ["params.yaml"]
    assert scenario_repo.origin_show("harness/retrain", "params.yaml").endswith("retrained: true")
    assert scenario_repo.origin_git("log", "-1", "--format=%s", "harness/retrain") == "retrain: new model"
    assert api.unexpected == []
    if token == "job":
        assert "GitHub Actions is not permitted to create or approve pull requests." in result.log
        assert api.pulls == {}
        return
    [pull] = api.pulls.values()
    assert (pull["head"]["ref"], pull["head"]["sha"], pull["base"]["ref"]) == (
        "harness/retrain",
        branch,
        "main",
    )
    assert (pull["title"], pull["user"]["login"], pull["labels"]) == (
        "Retrained model",
        "retrain-bot",
        [{"name": "retrain"}],
    )


HANGING_WORKFLOW = """
name: harness-hang
on: push
jobs:
  hang:
    runs-on: ubuntu-24.04
    steps:
      - run: echo "shell=$$"; sleep 300
"""


def test_a_run_past_its_time_bound_is_stopped_with_what_it_started(
    scenario_repo: ScenarioRepo, run_act: ActRunner
) -> None:
    workflow = _add_workflow(scenario_repo, "harness-hang.yml", HANGING_WORKFLOW)

    result = run_act(scenario_repo, "push", workflow, event_payload=scenario_repo.push_event(), timeout_s=5)

    assert (result.returncode, result.results) == (None, {"hang": "failure"})  # act cancels the job on SIGINT
    assert "this step has been cancelled" in result.log
    shell = int(result.job("hang").text.split("shell=")[1].split()[0])
    assert not Path(f"/proc/{shell}").exists()
    assert result.log.endswith("killed after the 5 s time bound\n")
