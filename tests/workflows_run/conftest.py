"""Fixtures for running workflow files with act (``make workflows-run``; every test here is marked ``act``).

``act_services``: the GitHub API and artifact stand-ins of one test (started), with the session's CA,
stand-in actions and tool cache. ``scenario_repo``: the repository (origin + work clone) of that test.
``run_act``: runs act in it; when the test fails, the readable log of each of its runs joins the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from act import ROOT, ActRunner, ActServices, make_toolcache, prepare_standin_actions
from act import act_services as start_act_services
from scenario_repo import ScenarioRepo
from standins.tls import TlsFiles, issue_certificates

HERE = Path(__file__).resolve().parent
LOG_TAIL_LINES = 400


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.act)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    runner: ActRunner | None = getattr(item, "act_runner", None)
    if runner is None or report.when != "call" or not report.failed:
        return
    for number, run in enumerate(runner.runs, 1):
        lines = run.log.splitlines()
        shown = "\n".join(lines[-LOG_TAIL_LINES:])
        header = f"act run {number}: {run.event} {run.workflow} -> exit {run.returncode}, jobs {run.results}"
        cut = f" (last {LOG_TAIL_LINES} of {len(lines)} lines)" if len(lines) > LOG_TAIL_LINES else ""
        report.sections.append((f"{header}{cut}; full log {run.log_path}", shown))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def standin_actions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_standin_actions(tmp_path_factory.mktemp("standin-actions"))


@pytest.fixture(scope="session")
def toolcache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toolcache(tmp_path_factory.mktemp("toolcache"))


@pytest.fixture
def act_services(
    tmp_path: Path, tls_files: TlsFiles, standin_actions: dict[str, Path], toolcache: Path
) -> Iterator[ActServices]:
    with start_act_services(
        tmp_path / "services",
        tls=tls_files,
        standin_actions=standin_actions,
        toolcache=toolcache,
        origin=tmp_path / "repo" / "origin.git",
    ) as services:
        yield services


@pytest.fixture
def scenario_repo(tmp_path: Path, act_services: ActServices) -> ScenarioRepo:
    (tmp_path / "repo").mkdir()
    return ScenarioRepo.create(ROOT, tmp_path / "repo", act_services.api.host, dict(os.environ))


@pytest.fixture
def run_act(request: pytest.FixtureRequest, tmp_path: Path, act_services: ActServices) -> ActRunner:
    runner = ActRunner(act_services, tmp_path / "act")
    request.node.act_runner = runner  # read by pytest_runtest_makereport
    return runner
