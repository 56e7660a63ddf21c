"""Markdown artifacts of the running flow or task, under a key Prefect accepts."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact


def publish_markdown(markdown: str, *, name: str, description: str) -> None:
    """Publish ``markdown`` as an artifact keyed ``name`` lowercased, other than ``a-z0-9-`` as ``-``."""
    create_markdown_artifact(markdown, key=re.sub(r"[^a-z0-9-]", "-", name.lower()), description=description)
