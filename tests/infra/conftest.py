"""Fixtures for tests/infra; helpers live in cfn_support.py (template) and iam_policy.py (IAM evaluator)."""

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# Shared helpers live in sibling test directories (tests/ has no packages: import by directory):
# k8s_support renders the overlays, procutil runs moto_server on a free loopback port.
_TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_TESTS / "k8s"))
sys.path.insert(0, str(_TESTS / "integration" / "monitoring"))

from cfn_support import TOOLS_BIN, infra_tool  # noqa: E402  (needs the sys.path entries above)
from procutil import free_port, running  # noqa: E402


@pytest.fixture(scope="module")
def moto_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    moto_server = infra_tool("moto_server")
    infra_tool("aws")
    port = free_port()
    home = tmp_path_factory.mktemp("aws-home")
    env = {
        **os.environ,
        "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's dummy credentials
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("AWS_PROFILE", None)
    log = home / "moto.log"
    with running(
        [moto_server, "-H", "127.0.0.1", "-p", str(port)], log, f"http://127.0.0.1:{port}/moto-api/", env
    ):
        yield env
