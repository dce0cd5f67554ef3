"""Stand-ins for the `aws` and `gh` executables: record each argv, print a fixed stdout, fail on demand."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fake_cli(bin_dir: Path, name: str, log: Path, stdout: str = "", fail_when: str = "") -> Path:
    """An executable `name` recording its argv as a JSON line; exit 1 when an argument equals fail_when."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.write({stdout!r})\n"
        f"if {fail_when!r} and {fail_when!r} in sys.argv[1:]:\n"
        "    sys.stderr.write('HTTP 404: Not Found (simulated)')\n"
        "    sys.exit(1)\n"
    )
    script.chmod(0o755)
    return script


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
