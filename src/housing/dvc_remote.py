"""The team's DVC remote: configured from ``DVC_REMOTE_URL``, and checked to hold everything that is pinned.

The URL is not committed (``.dvc/config`` has none): each clone, CI job and developer sets it, e.g. from
the repository variable ``DVC_REMOTE_URL`` (``s3://bucket/dvc``, or a directory: a local or shared disk).
``configure`` writes it to ``.dvc/config.local`` as the default remote ``storage``; credentials come from the
environment (the OIDC role in CI), never from a file.

``check`` is what a pull request runs: every output ``dvc.lock`` pins and ``data.dvc``'s data must be on the
remote, otherwise CD (which pulls ``models/``), the retraining workflow and every reviewer who wants to
reproduce the result would fail later. Run as ``python -m housing.dvc_remote configure|check|require``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from housing.errors import ConfigError, DataError, HousingError

REMOTE_NAME = "storage"
URL_ENV = "DVC_REMOTE_URL"
MAX_LISTED = 12


def dvc_executable() -> str:
    """The project's dvc: on PATH, or beside this interpreter (a venv not activated)."""
    found = shutil.which("dvc")
    if found:
        return found
    beside = Path(sys.executable).with_name("dvc")
    if beside.exists():
        return str(beside)
    raise ConfigError("dvc: executable not found on PATH (install the project with `make install`)")


def dvc(*args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the project's dvc."""
    return subprocess.run(
        [dvc_executable(), *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def remote_url() -> str | None:
    """The remote DVC uses by default (``dvc remote default`` + its url), or None."""
    default = dvc("remote", "default")
    name = default.stdout.strip()
    if default.returncode != 0 or not name:
        return None
    url = dvc("config", f"remote.{name}.url")
    return url.stdout.strip() or None if url.returncode == 0 else None


def configure(url: str | None = None) -> str | None:
    """Make ``url`` (default: ``$DVC_REMOTE_URL``) this clone's default remote; None when none is set."""
    url = (url if url is not None else os.environ.get(URL_ENV, "")).strip()
    if not url:
        return None
    if "://" not in url:
        url = str(Path(url).expanduser().resolve())  # a directory remote, independent of the cwd
    result = dvc("remote", "add", "--local", "--force", "--default", REMOTE_NAME, url)
    if result.returncode != 0:
        raise ConfigError(f"{URL_ENV}={url}: dvc remote add failed: {result.stderr.strip()}")
    return url


def require() -> str:
    """The configured remote's URL; a clear error naming ``DVC_REMOTE_URL`` when there is none."""
    url = remote_url()
    if url is None:
        raise ConfigError(
            f"no DVC remote: set {URL_ENV} (a repository variable in GitHub, e.g. s3://<bucket>/dvc; "
            "locally any directory) and run `make dvc-remote`, or `dvc remote add --local -d storage <url>`"
        )
    return url


def unpushed() -> dict[str, str]:
    """Pinned outputs that the remote lacks, with DVC's status: ``new`` (only in the local cache) or
    ``missing`` (nowhere: produced elsewhere and never pushed)."""
    result = dvc("status", "--cloud", "--json")
    if result.returncode != 0:
        raise DataError(f"dvc status --cloud failed: {(result.stderr or result.stdout).strip()[-500:]}")
    status = json.loads(result.stdout or "{}")
    lacking = {path: state for path, state in sorted(status.items()) if state in ("new", "missing")}
    # A directory output is listed with each of its files: name the directory once.
    return {
        path: state
        for path, state in lacking.items()
        if not any(parent.as_posix() in lacking for parent in Path(path).parents)
    }


def check() -> str:
    """Raise :class:`DataError` listing what is not on the remote, with the command that fixes it."""
    url = require()
    lacking = unpushed()
    if lacking:
        listed = [f"{path} ({state})" for path, state in list(lacking.items())[:MAX_LISTED]]
        more = f" and {len(lacking) - MAX_LISTED} more" if len(lacking) > MAX_LISTED else ""
        raise DataError(
            f"DVC remote {url}: {len(lacking)} output(s) pinned by dvc.lock / data.dvc are not on the "
            f"remote: {', '.join(listed)}{more}. Run `dvc push` where they were produced (after "
            "`dvc repro`), then push the commit again."
        )
    return url


def main(argv: list[str] | None = None) -> None:
    commands = {"configure": configure, "check": check, "require": require}
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in commands:
        print(f"usage: python -m housing.dvc_remote {'|'.join(commands)}", file=sys.stderr)
        sys.exit(2)
    try:
        url = commands[args[0]]()
    except HousingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    if args[0] == "configure":
        print(f"DVC remote: {url}" if url else f"DVC remote: none ({URL_ENV} is not set)")
    elif args[0] == "check":
        print(f"every output pinned by dvc.lock and data.dvc is on the DVC remote {url}")


if __name__ == "__main__":
    main()
