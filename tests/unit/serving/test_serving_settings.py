"""ServeSettings is the one place where serving limits live: flags, env vars and the settings agree."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from housing.cli import app
from housing.errors import ConfigError
from housing.serving.settings import AbMode, ServeSettings

BAD_VALUES = {  # one value per bounded setting that its own rule refuses
    "port": "70000",
    "log_max_bytes": "10",
    "log_rotate_seconds": "0",
    "log_max_files": "-1",
    "log_queue_rows": "0",
    "log_flush_interval": "0",
    "max_batch": "0",
    "max_body_bytes": "10",
    "range_tolerance": "10.5",
    "feedback_window": "1",
    "ppe_tolerance": "1.0",
    "feedback_capacity_rows": "0",
    "feedback_ttl_seconds": "0",
    "feedback_token_max_rows": "-1",
    "fault_error_rate": "1.5",
    "fault_latency_ms": "60001",
    "graceful_timeout": "-1",
    "challenger_share": "-0.1",
}


def serve_command():
    return typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]


def captured_settings(monkeypatch, *args: str) -> ServeSettings:
    import housing.serving.server as server

    seen: list[ServeSettings] = []
    monkeypatch.setattr(server, "run", seen.append)
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 0, result.output
    return seen[0]


def housing_serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`housing serve` as users run it (the CLI's one-line error handling included)."""
    return subprocess.run(
        [sys.executable, "-m", "housing.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_every_setting_has_a_flag_and_no_flag_has_limits_of_its_own():
    options = {param.name: param for param in serve_command().params}
    assert set(options) == set(ServeSettings.model_fields)
    for name, option in options.items():
        assert option.default is None, name  # unset: the settings' default (or env var) applies
        assert (option.min, option.max) == (None, None), name  # bounds: the model's only
        assert option.envvar is None, name  # the settings read HOUSING_* themselves
        assert f"HOUSING_{name.upper()}" in option.help, name


def test_option_help_shows_the_models_default_and_bounds():
    options = {param.name: param.help for param in serve_command().params}
    assert "default: 0.0; >= 0, <= 10" in options["range_tolerance"]
    assert "default: 0.25; > 0, < 1" in options["ppe_tolerance"]
    assert "default: 8080; >= 0, <= 65535" in options["port"]


@pytest.mark.parametrize(("field", "value"), sorted(BAD_VALUES.items()))
def test_flags_and_env_vars_are_refused_by_the_same_rule(field, value):
    flag = f"--{field.replace('_', '-')}"
    with pytest.raises(ConfigError, match=rf"{field}=.*is out of range: must be .* \({flag} / HOUSING_"):
        ServeSettings(**{field: value})


def test_ppe_tolerance_1_is_refused_by_the_cli_too():
    """Bug fixed: the CLI accepted --ppe-tolerance 1.0 (max=1.0) that the settings then refused."""
    result = housing_serve("--ppe-tolerance", "1.0", "--model-dir", "/nonexistent")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: serve setting ppe_tolerance=1.0 is out of range: must be < 1.0 "
        "(--ppe-tolerance / HOUSING_PPE_TOLERANCE)"
    ]


def test_range_tolerance_limit_holds_for_the_flag_and_the_env_var():
    """Bug fixed: range_tolerance <= 10 was checked by the settings only, not by the CLI option."""
    by_flag = housing_serve("--range-tolerance", "11", "--model-dir", "/nonexistent")
    by_env = housing_serve("--model-dir", "/nonexistent", env={"HOUSING_RANGE_TOLERANCE": "11"})
    for result in (by_flag, by_env):
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert "range_tolerance=" in line
        assert "must be <= 10" in line
        assert "--range-tolerance / HOUSING_RANGE_TOLERANCE" in line


def test_a_flag_beats_its_env_var_and_env_vars_fill_the_rest(monkeypatch, tmp_path):
    monkeypatch.setenv("HOUSING_PORT", "9001")
    monkeypatch.setenv("HOUSING_MAX_BATCH", "50")
    monkeypatch.setenv("HOUSING_NO_INFERENCE_LOG", "true")
    settings = captured_settings(monkeypatch, "--port", "9002", "--model-dir", str(tmp_path))
    assert (settings.port, settings.max_batch, settings.model_dir) == (9002, 50, tmp_path)
    assert settings.log_dir is None  # --no-inference-log / HOUSING_NO_INFERENCE_LOG
    monkeypatch.delenv("HOUSING_NO_INFERENCE_LOG")
    settings = captured_settings(monkeypatch, "--inference-log-dir", str(tmp_path / "log"))
    assert settings.log_dir == tmp_path / "log"
    assert settings.model_dir is None  # resolved when the app is built (KServe mount, baked, ./models)


def test_choices_come_from_the_enums_and_cross_field_rules_hold(monkeypatch):
    assert ServeSettings(ab_mode="shadow", challenger_model_dir="x").ab_mode is AbMode.SHADOW
    assert ServeSettings(log_level="debug").log_level == "DEBUG"
    assert ServeSettings(log_level="warn").log_level == "WARNING"  # logging's own alias
    with pytest.raises(ConfigError, match="log_level='LOUD': must be one of DEBUG, INFO, WARNING"):
        ServeSettings(log_level="loud")
    with pytest.raises(ConfigError, match=r"ab_mode='split' needs a challenger model directory \(--"):
        ServeSettings(ab_mode="split")
    monkeypatch.setenv("HOUSING_AB_MODE", "split")
    with pytest.raises(ConfigError, match="needs a challenger"):
        ServeSettings()
    with pytest.raises(ConfigError, match="model_name='a/b'"):
        ServeSettings(model_name="a/b", ab_mode="off")


def test_an_unreadable_feedback_secret_stops_the_server_with_one_line(model_dir, tmp_path):
    token, short, absent = tmp_path / "token", tmp_path / "short-key", tmp_path / "absent"
    token.write_text("a-good-feedback-token-0123456789")
    short.write_text("too-short")
    for flags, message in (
        (
            ["--feedback-token-file", str(absent)],
            f"{absent}: cannot read the feedback token (FileNotFoundError: [Errno 2] No such file or "
            f"directory: '{absent}')",
        ),
        (
            ["--feedback-token-file", str(token), "--feedback-signing-key-file", str(short)],
            f"{short}: the feedback signing key must be at least 16 printable ASCII characters "
            "(e.g. `openssl rand -hex 32`)",
        ),
    ):
        result = housing_serve("--model-dir", str(model_dir), "--no-inference-log", *flags)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
