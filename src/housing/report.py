"""Markdown experiment report for pull requests (posted by CML). Filled in by the workflows issue."""

from __future__ import annotations

import typer


def register(app: typer.Typer, simulate: typer.Typer) -> None:  # noqa: ARG001
    """Add ``housing report`` to the root app."""
