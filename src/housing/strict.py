"""The one base of every configuration model: ``params.yaml``'s sections and every runtime setting.

``Strict`` models reject unknown keys (a typo fails with the key's path instead of being ignored) and are
immutable. ``StrictSettings`` is the same for settings that containers set through ``HOUSING_*`` environment
variables (pydantic-settings). CLI options take their defaults and limits from these models
(:func:`field_help` describes a field's default and bounds in an option's help): no limit is written twice.
"""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HOUSING_"


class Strict(BaseModel):
    """Base for every config section and typed result: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictSettings(BaseSettings):
    """A strict model whose fields may also come from ``HOUSING_<FIELD>`` environment variables."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_prefix=ENV_PREFIX)


def field_help(model: type[BaseModel], name: str, text: str) -> str:
    """``text`` plus the field's default and bounds, as the model defines them (for a CLI option's help)."""
    field = model.model_fields[name]
    bounds = []
    for rule in field.metadata:
        for kind, symbol in ((Ge, ">="), (Gt, ">"), (Le, "<="), (Lt, "<")):
            if isinstance(rule, kind):
                bounds.append(f"{symbol} {_value(rule)}")
    suffix = f"; {', '.join(bounds)}" if bounds else ""
    return f"{text} [default: {field.default}{suffix}]"


def _value(rule: Any) -> Any:
    return next(getattr(rule, attr) for attr in ("ge", "gt", "le", "lt") if hasattr(rule, attr))
