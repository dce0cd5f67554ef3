import sys
from pathlib import Path

# Shared stand-ins/helpers live in sibling test directories (tests/ has no packages: import by directory).
_TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_TESTS / "unit" / "deploy"))
sys.path.insert(0, str(_TESTS / "integration" / "monitoring"))
