"""A real Alertmanager (Debian prometheus-alertmanager) with the project's routing delivers alerts to a real
`housing retrain-trigger` process, which dispatches to a local stand-in for GitHub's API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from github_standin import GitHubStandin
from procutil import free_port, require, running

ROOT = Path(__file__).resolve().parents[3]
ALERTMANAGER_YML = ROOT / "k8s/monitoring/alertmanager/alertmanager.yml"
HOUSING = str(Path(sys.executable).with_name("housing"))
TOKEN = "integration-webhook-token-0123456789"

pytestmark = pytest.mark.integration


def local_config(trigger_url: str, secrets: Path) -> dict:
    """The project's Alertmanager config with local URLs/secret files and second-scale timers."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    for route in [config["route"], *config["route"]["routes"]]:
        route.update({"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"})
    for receiver in config["receivers"]:
        receiver.pop("slack_configs", None)  # no Slack here; people's receiver stays in the tree
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = trigger_url
            environment = receiver["name"].rsplit("-", 1)[1]
            hook["http_config"]["authorization"]["credentials_file"] = str(secrets / environment)
    return config


def amtool_add(amtool: str, url: str, alertname: str, **labels: str) -> None:
    args = [f"{k}={v}" for k, v in {"alertname": alertname, **labels}.items()]
    subprocess.run(
        [
            amtool,
            "alert",
            "add",
            *args,
            "--annotation=summary=integration test alert",
            f"--alertmanager.url={url}",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_alertmanager_routes_alerts_to_the_trigger_which_dispatches_once(tmp_path):
    alertmanager = require("prometheus-alertmanager")
    amtool = require("amtool")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "production").write_text(TOKEN + "\n")
    (secrets / "staging").write_text("a-stale-token-that-the-trigger-refuses\n")
    trigger_port, am_port = free_port(), free_port()
    trigger_url = f"http://127.0.0.1:{trigger_port}"
    am_url = f"http://127.0.0.1:{am_port}"
    (tmp_path / "alertmanager.yml").write_text(
        yaml.safe_dump(local_config(f"{trigger_url}/alertmanager", secrets))
    )

    with GitHubStandin() as github:
        env = os.environ | {
            "HOUSING_RETRAIN_WEBHOOK_TOKEN": TOKEN,
            "GITHUB_TOKEN": github.token,
            "HOUSING_GITHUB_REPOSITORY": github.repository,
            "HOUSING_GITHUB_API_URL": github.url,
            "HOUSING_LOG_LEVEL": "INFO",
        }
        trigger_cmd = [HOUSING, "retrain-trigger", "--host", "127.0.0.1", "--port", str(trigger_port)]
        am_cmd = [
            alertmanager,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]
        trigger_log, am_log = tmp_path / "trigger.log", tmp_path / "alertmanager.log"
        with (
            running(trigger_cmd, trigger_log, f"{trigger_url}/healthz", env=env),
            running(am_cmd, am_log, f"{am_url}/-/ready"),
        ):
            labels = {"namespace": "housing-production", "model": "housing", "variant": "champion"}
            amtool_add(
                amtool,
                am_url,
                "ModelPerformanceDegraded",
                category="performance",
                severity="warning",
                **labels,
            )
            amtool_add(amtool, am_url, "ModelLatencyHigh", category="latency", severity="warning", **labels)
            amtool_add(
                amtool,
                am_url,
                "ModelDataDrift",
                category="drift",
                severity="warning",
                namespace="housing-staging",
                model="housing",
            )
            assert wait_until(lambda: len(github.dispatches) >= 1), am_log.read_text()[-3000:]
            # Alertmanager re-sends the group every ~2s (repeat_interval): the trigger must not re-dispatch.
            assert wait_until(lambda: trigger_log.read_text().count("duplicate notification") >= 2), (
                trigger_log.read_text()
            )
            # The staging route delivers with a wrong token: refused, never dispatched.
            assert wait_until(lambda: "rejected unauthenticated webhook" in trigger_log.read_text())

            amtool_add(
                amtool,
                am_url,
                "ModelDataDrift",
                category="drift",
                severity="warning",
                namespace="housing-production",
                model="housing",
            )
            assert wait_until(lambda: len(github.dispatches) >= 2)
            time.sleep(2.5)  # one more repeat cycle

    names = [d["body"]["client_payload"]["alertnames"] for d in github.dispatches]
    assert names == [["ModelPerformanceDegraded"], ["ModelDataDrift"]], trigger_log.read_text()
    first = github.dispatches[0]
    assert first["path"] == f"/repos/{github.repository}/dispatches"
    assert first["body"]["event_type"] == "retrain"
    payload = first["body"]["client_payload"]
    assert payload["status"] == "firing"
    assert payload["common_labels"]["namespace"] == "housing-production"
    assert payload["alerts"][0]["labels"]["category"] == "performance"
    assert payload["alerts"][0]["summary"] == "integration test alert"
    assert "ModelLatencyHigh" not in trigger_log.read_text()  # latency never reaches the trigger
