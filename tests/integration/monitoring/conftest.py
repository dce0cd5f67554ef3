import sys
from pathlib import Path

# Shared stand-ins live beside the unit tests (tests/ has no packages: import them by directory).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "monitoring"))
