"""The benchmark package lives at the repository root, outside the installed packages."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# ``python -m pytest`` from the root has it on sys.path already; a bare ``pytest`` does not.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
