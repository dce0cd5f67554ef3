"""Get ``data/`` to the version pinned by ``data.dvc``: ``dvc pull`` when a remote answers, else rebuild.

Run as ``python -m housing.data_setup`` (``make data``). Rebuilding re-ingests the raw data set through
scikit-learn and regenerates the bootstrap production window, then checks that the result hashes to what
``data.dvc`` records. A mismatch means ``data/`` holds files only the team's remote has (e.g. a real
production window): the command then fails and says so instead of silently using other data.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from housing.config import DEFAULT_PARAMS_PATH, load_params
from housing.dvc_remote import dvc, remote_url
from housing.errors import DataError, HousingError

log = logging.getLogger("housing.data_setup")

DVC_FILE = Path("data.dvc")
# How the committed production window was made until real inference logs replace it.
BOOTSTRAP_WINDOW = {"scenario": "none", "rows": 5000, "seed": 7}


def _recorded_hash(dvc_file_text: str) -> str:
    import yaml

    try:
        return str(yaml.safe_load(dvc_file_text)["outs"][0]["md5"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{DVC_FILE}: no outs[0].md5 ({exc!r})") from None


def data_matches_dvc_file() -> bool:
    """True when the workspace's data/ hashes to what data.dvc records, and is then in the local cache.

    ``dvc status`` alone cannot tell on a fresh clone: with an empty cache it reports "not in cache" even
    when the files are right. Then ``dvc commit`` hashes the workspace (and caches it); the result must equal
    the recorded hash, otherwise data.dvc is restored untouched.
    """
    result = dvc("status", "--json", str(DVC_FILE))
    if result.returncode != 0:
        raise DataError(f"{DVC_FILE}: dvc status failed: {result.stderr.strip()}")
    status = json.loads(result.stdout or "{}")
    if status == {}:
        return True
    if status != {str(DVC_FILE): [{"changed outs": {"data": "not in cache"}}]}:
        return False
    recorded = DVC_FILE.read_text()
    dvc("commit", "--force", str(DVC_FILE), check=True)
    if _recorded_hash(DVC_FILE.read_text()) == _recorded_hash(recorded):
        return True
    DVC_FILE.write_text(recorded)
    return False


def rebuild(params_path: Path = DEFAULT_PARAMS_PATH) -> None:
    from housing import simulate
    from housing.ingest import ingest

    cfg = load_params(params_path)
    result = ingest(cfg.data)
    log.info("ingested %d rows -> %s", result.rows, result.path)
    simulate.write_window(cfg.data, out=cfg.data.production_window_path, **BOOTSTRAP_WINDOW)
    log.info("wrote bootstrap production window %s -> %s", BOOTSTRAP_WINDOW, cfg.data.production_window_path)


def setup_data(params_path: Path = DEFAULT_PARAMS_PATH) -> str:
    """Make data/ match data.dvc; return how: 'present', 'pulled' or 'rebuilt'."""
    if not DVC_FILE.exists():
        raise DataError(f"{DVC_FILE}: not found; run from the repository root")
    if Path("data").is_dir() and data_matches_dvc_file():
        return "present"
    if remote_url() is not None:
        pulled = dvc("pull", str(DVC_FILE))
        if pulled.returncode == 0 and data_matches_dvc_file():
            return "pulled"
        log.warning(
            "dvc pull failed or incomplete (%s); rebuilding from the source", pulled.stderr.strip()[-300:]
        )
    rebuild(params_path)
    if not data_matches_dvc_file():
        raise DataError(
            f"data/ was rebuilt but does not match {DVC_FILE}: the pinned data includes files that only the "
            "DVC remote holds (e.g. a logged production window). Configure the remote (see README) and "
            "run `dvc pull`."
        )
    return "rebuilt"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        how = setup_data()
    except HousingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print(f"data/: {how}, matches {DVC_FILE}")


if __name__ == "__main__":
    main()
