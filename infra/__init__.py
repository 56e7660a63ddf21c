"""Local stack and deployment helpers: Postgres, SeaweedFS (S3), Prefect server and worker.

Imports no application code (``lakehouse``, ``checks``, ``tasks``, ``flows``).
"""
