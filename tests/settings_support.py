"""Checks that a command's options are derived from its settings model (no default or limit of their own).

Importable from any test directory: pytest puts ``tests/`` (the rootdir conftest's folder) on ``sys.path``.
"""

from __future__ import annotations

import typer
from pydantic import BaseModel

from housing.cli import app
from housing.strict import env_var, flag


def command_options(*path: str) -> dict[str, object]:
    """The options of ``housing <path...>`` by flag (``--x``), negative flags left out."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return {opt: param for param in command.params for opt in param.opts}


def assert_options_follow(model: type[BaseModel], options: dict[str, object], *not_options: str) -> None:
    """Every field of ``model`` that has a flag is an option with no default, limits or env var of its own
    (unset: the model's default, or its env var, applies), and its help shows the model's default and env
    var. ``not_options``: fields whose flag feeds them differently (a token file)."""
    for name, field in model.model_fields.items():
        option_flag = flag(model, name)
        if option_flag is None or name in not_options:
            continue
        assert option_flag in options, f"{name}: no option {option_flag}"
        option = options[option_flag]
        assert option.default is None, name
        assert (getattr(option, "min", None), getattr(option, "max", None)) == (None, None), name
        assert option.envvar is None, name
        default = "required" if field.is_required() else field.default
        assert f"[default: {default}" in option.help, (name, option.help)
        if env_var(model, name):
            assert f"[env var: {env_var(model, name)}]" in option.help, name
