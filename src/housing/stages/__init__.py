"""The pipeline's stages: one module per ``dvc.yaml`` stage, named after it, each with one entry
``run(params) -> <Stage>Result`` (typed results: ``housing.results``).

``dvc.yaml`` runs each as ``python -m housing.stages.<name>``; ``housing <name>`` calls the same ``run``.
A stage imports shared helpers (config, frames, checks, features, metrics, modelio, logwindow, registry...)
and never another stage; ``tests/unit/test_dvc_deps.py`` derives each stage's module closure from its
imports and checks that ``dvc.yaml`` lists exactly those files as dependencies.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from housing.config import DEFAULT_PARAMS_PATH, Params, load_params
from housing.errors import HousingError
from housing.strict import Strict

# In the order dvc.yaml runs them.
STAGES = ("validate", "split", "train", "export", "evaluate", "drift", "register")

ResultT = TypeVar("ResultT", bound=Strict)


def main(
    run: Callable[[Params], ResultT], describe: Callable[[ResultT], str], argv: list[str] | None = None
) -> None:
    """``python -m housing.stages.<name> [--params FILE]``: run the stage, print one line; a user error
    (bad params, bad data, a missed gate) prints one ``error:`` line and exits non-zero, no traceback."""
    parser = argparse.ArgumentParser(prog=f"python -m {run.__module__}", description=run.__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH, help="Path to params.yaml.")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HOUSING_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        result = run(load_params(args.params))
    except HousingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print(describe(result))
