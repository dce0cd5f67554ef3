"""CLI commands of this subpackage; ``housing.cli`` calls :func:`register`. Keep imports lazy."""

from __future__ import annotations

import typer


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add this subpackage's commands to the root app (and the ``simulate`` group)."""
