"""Prefect flows: the composition root. Entry points are ``python -m flows.<name>``."""

import os

# Entry points never phone home, and lakehouse/checks logs reach the Prefect run log.
os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "lakehouse,checks")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
