"""The one base of every configuration model: ``params.yaml``'s sections and every runtime setting.

``Strict`` models reject unknown keys (a typo fails with the key's path instead of being ignored) and are
immutable. ``StrictSettings`` is the same for settings that containers set through ``HOUSING_*`` environment
variables (pydantic-settings). CLI options take their defaults and limits from these models
(:func:`field_help` describes a field's default and bounds in an option's help, :func:`settings_option` makes
the typer option): no limit is written twice. :class:`OneLineErrors` turns a settings model's validation
errors into one line naming each setting, its flag (and env var) and the rule it broke.
"""

from __future__ import annotations

from typing import Any, ClassVar, get_args

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from housing.errors import ConfigError, HousingError

ENV_PREFIX = "HOUSING_"


class Strict(BaseModel):
    """Base for every config section and typed result: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictSettings(BaseSettings):
    """A strict model whose fields may also come from ``HOUSING_<FIELD>`` environment variables."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_prefix=ENV_PREFIX)


class OneLineErrors:
    """Mix into a settings model (before its pydantic base): construction errors become one
    ``setting_error`` naming, per broken rule, the setting and its value, the rule, its flag and env var.

    A field's flag is ``--<field-name>`` unless ``Field(json_schema_extra={"flag": "--other"})`` names
    another (``None``: no flag). Values of ``SecretStr`` fields are never shown.
    """

    setting_name: ClassVar[str] = "setting"  # the message's prefix: "<setting_name> setting <field>=..."
    setting_error: ClassVar[type[HousingError]] = ConfigError

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise self.setting_error(describe_errors(type(self), exc)) from None


def field_help(model: type[BaseModel], name: str, text: str) -> str:
    """``text`` plus the field's default and bounds, as the model defines them (for a CLI option's help)."""
    field = model.model_fields[name]
    bounds = []
    for rule in field.metadata:
        for kind, symbol in ((Ge, ">="), (Gt, ">"), (Le, "<="), (Lt, "<")):
            if isinstance(rule, kind):
                bounds.append(f"{symbol} {_value(rule)}")
    suffix = f"; {', '.join(bounds)}" if bounds else ""
    default = "required" if field.is_required() else field.default
    return f"{text} [default: {default}{suffix}]"


def _value(rule: Any) -> Any:
    return next(getattr(rule, attr) for attr in ("ge", "gt", "le", "lt") if hasattr(rule, attr))


def flag(model: type[BaseModel], name: str) -> str | None:
    """The CLI flag of a field: ``--<name-with-dashes>`` unless the field names another (or None)."""
    extra = model.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and "flag" in extra:
        return extra["flag"]  # type: ignore[return-value]
    return f"--{name.replace('_', '-')}"


def env_var(model: type[BaseModel], name: str) -> str | None:
    """The environment variable a settings model reads for a field (None for a plain ``Strict`` model)."""
    if not issubclass(model, BaseSettings):
        return None
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{model.model_config.get('env_prefix', '')}{name}".upper()


def flag_and_env(model: type[BaseModel], name: str) -> str:
    """``--the-flag / HOUSING_THE_FLAG`` of a setting (whichever of the two it has)."""
    return " / ".join(part for part in (flag(model, name), env_var(model, name)) if part)


def option_help(model: type[BaseModel], name: str, text: str) -> str:
    """The text, the model's default and bounds, and the env var, escaped (typer renders rich markup, in
    which ``[default: ...]`` would be a style tag and vanish)."""
    from rich.markup import escape

    env = env_var(model, name)
    return escape(field_help(model, name, text) + (f" [env var: {env}]" if env else ""))


def settings_option(model: type[BaseModel], name: str, text: str, *flags: str) -> Any:
    """A typer option for a model field with no default (None: the model's, or its env var, applies) and no
    limits of its own (the model checks them); its help shows the model's default, bounds and env var."""
    import typer

    return typer.Option(*flags, help=option_help(model, name, text), show_default=False)


def given(options: dict[str, Any], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The options a command was given (not None), to pass to a settings model (only its fields, if named)."""
    return {
        name: value
        for name, value in options.items()
        if value is not None and (model is None or name in model.model_fields)
    }


_BOUNDS = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}


def describe_errors(model: type[BaseModel], exc: ValidationError) -> str:
    """One line for every broken rule: the setting and its value, the rule, the flag and env var."""
    return "; ".join(_describe(model, error) for error in exc.errors())


def _field_name(model: type[BaseModel], key: str) -> str | None:
    """The field an error location names: its name, or its env var alias when the value came from there."""
    if key in model.model_fields:
        return key
    return next(
        (name for name, field in model.model_fields.items() if _alias(field) == key.upper()),
        None,
    )


def _alias(field: FieldInfo) -> str | None:
    return field.validation_alias.upper() if isinstance(field.validation_alias, str) else None


def _is_secret(field: FieldInfo) -> bool:
    return any(kind is SecretStr for kind in (field.annotation, *get_args(field.annotation)))


def _describe(model: type[BaseModel], error: Any) -> str:
    prefix = f"{getattr(model, 'setting_name', model.__name__)} setting"
    message = error["msg"].removeprefix("Value error, ")
    loc = error["loc"]
    if not loc:  # a rule across fields (model validator): its message names what to set
        return f"{prefix} {message}"
    name = _field_name(model, str(loc[0]))
    if name is None:
        return f"{prefix} {loc[0]}: unknown setting"
    field = model.model_fields[name]
    kind = error["type"]
    if kind in _BOUNDS:
        key, symbol = _BOUNDS[kind]
        rule = f"is out of range: must be {symbol} {error['ctx'][key]}"
    elif kind == "enum":
        choices = ", ".join(member.value for member in field.annotation)  # type: ignore[union-attr]
        rule = f": must be one of {choices}"
    elif kind == "missing":
        rule = ": is required"
    else:
        rule = f": {message[:1].lower()}{message[1:]}"
    shown = "" if kind == "missing" or _is_secret(field) else f"={error.get('input')!r}"
    return f"{prefix} {name}{shown} {rule} ({flag_and_env(model, name)})".replace(" :", ":")
