"""TriggerSettings is the one place of the retrain trigger's settings: flags, the HOUSING_* env vars the k8s
manifest and docs/kubernetes.md name, and their rules agree; a bad value is one line, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from housing.monitoring.retrain_trigger import RetrainTriggerError, TriggerSettings
from housing.strict import env_var
from settings_support import assert_options_follow, command_options

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "webhook-secret-0123456789abcdef"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HOUSING_") and k != "GITHUB_TOKEN"}


def trigger(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`housing retrain-trigger` as the container runs it (the CLI's one-line errors included)."""
    return subprocess.run(
        [sys.executable, "-m", "housing.cli", "retrain-trigger", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**CLEAN_ENV, **(env or {})},
        check=False,
    )


def test_options_take_defaults_limits_and_help_from_the_settings():
    options = command_options("retrain-trigger")
    assert_options_follow(TriggerSettings, options, "webhook_token", "github_token")
    assert "--repository" in options  # the flag keeps its name; the field says what it is
    assert "[default: 8080; >= 0, <= 65535]" in options["--port"].help


def test_the_manifests_and_the_docs_env_vars_are_the_settings_env_vars():
    manifest = yaml.safe_load_all((ROOT / "k8s/base/retrain-trigger.yaml").read_text())
    deployment = next(doc for doc in manifest if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    read = {env_var(TriggerSettings, name) for name in TriggerSettings.model_fields}
    set_by_manifest = {entry["name"] for entry in container["env"]}
    assert set_by_manifest <= read
    documented = set(
        re.findall(r"\b(HOUSING_[A-Z_]+|GITHUB_TOKEN)\b", (ROOT / "docs/kubernetes.md").read_text())
    )
    trigger_vars = {name for name in documented if "RETRAIN" in name or "GITHUB" in name}
    assert trigger_vars <= read, trigger_vars - read


def test_env_vars_configure_the_settings_and_a_flag_wins(monkeypatch):
    for name, value in {
        "HOUSING_RETRAIN_WEBHOOK_TOKEN": TOKEN,
        "HOUSING_GITHUB_REPOSITORY": "acme/housing",
        "HOUSING_GITHUB_API_URL": "http://127.0.0.1:9",
        "HOUSING_RETRAIN_DEDUP_TTL": "60",
        "HOUSING_RETRAIN_DRY_RUN": "true",
        "HOUSING_RETRAIN_PORT": "9001",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    settings = TriggerSettings(port=9002)
    assert settings.webhook_token.get_secret_value() == TOKEN
    assert (settings.github_repository, settings.dedup_ttl, settings.dry_run) == ("acme/housing", 60.0, True)
    assert settings.port == 9002
    assert settings.dispatch_url == "http://127.0.0.1:9/repos/acme/housing/dispatches"
    assert TOKEN not in repr(settings)  # tokens are SecretStr: never in logs or tracebacks


def test_port_out_of_range_is_one_line_not_a_traceback():
    """Bug fixed: --port was an unchecked int; 70000 reached socket.bind and ended in an OverflowError
    traceback."""
    result = trigger(
        "--port", "70000", "--repository", "acme/housing", env={"HOUSING_RETRAIN_WEBHOOK_TOKEN": TOKEN}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: retrain-trigger setting port=70000 is out of range: must be <= 65535 "
        "(--port / HOUSING_RETRAIN_PORT)"
    ]


def test_the_repository_has_no_default_the_settings_refuse():
    """Bug fixed: the CLI's default repository was OWNER/REPO, a value the settings always refused (with a
    message naming only the env var). Now it is required, and the message names the flag and the env var."""
    missing = trigger("--dry-run", env={"HOUSING_RETRAIN_WEBHOOK_TOKEN": TOKEN})
    assert missing.returncode == 2
    (line,) = missing.stderr.strip().splitlines()
    assert "github_repository: is required (--repository / HOUSING_GITHUB_REPOSITORY)" in line
    placeholder = trigger(
        "--dry-run", env={"HOUSING_RETRAIN_WEBHOOK_TOKEN": TOKEN, "HOUSING_GITHUB_REPOSITORY": "OWNER/REPO"}
    )
    assert "github_repository='OWNER/REPO': must look like owner/name" in placeholder.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"event_type": ""}, "event_type='': string should have at least 1 character (--event-type"),
        ({"event_type": "x" * 101}, "at most 100 characters"),
        ({"port": -1}, "port=-1 is out of range: must be >= 0"),
    ],
)
def test_bounds_of_new_settings(overrides, message):
    settings = {"webhook_token": TOKEN, "github_repository": "acme/housing", "github_token": "t"} | overrides
    with pytest.raises(RetrainTriggerError, match=re.escape(message)):
        TriggerSettings(**settings)


def test_a_bad_token_is_named_but_never_shown():
    with pytest.raises(RetrainTriggerError) as refused:
        TriggerSettings(webhook_token="short-secret", github_repository="acme/housing", github_token="t")
    assert "webhook_token: must be at least 16 characters" in str(refused.value)
    assert "short-secret" not in str(refused.value)
