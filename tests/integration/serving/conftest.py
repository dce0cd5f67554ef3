"""Fixtures: a real `housing serve` process on 127.0.0.1, stopped with SIGTERM at teardown."""

from __future__ import annotations

import pytest
from serving_support import start_server


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """One shared server for a test module (read-mostly tests)."""
    srv = start_server(model_dir, tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()
