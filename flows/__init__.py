"""Prefect flows: the composition root. Entry points are ``python -m flows.<name>``.

Prefect's settings for the project (analytics off, the temporary server's startup timeout, the
lakehouse and checks loggers in the run log) are in ``prefect.toml`` at the project root.
"""

import os

# Entry points never phone home (Soda reads this at import; it has no config file of its own).
os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
