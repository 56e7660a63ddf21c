"""The engine names no source's tables or columns: a source's knowledge lives in its folder only.

Every identifier and string in the code of ``lakehouse``, ``checks``, ``tasks`` and ``flows`` is
checked (documentation aside: docstrings and comments may use TPC-H as an example) against the
names the bundled sources declare: their columns, tables and gold models. Plain English words
(a table ``orders``, a column ``name``) are left out: they say nothing of a source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.declared import REGISTRY

ENGINE = ("lakehouse", "checks", "tasks", "flows")
ENGLISH = {"part", "orders", "customer", "region", "nation", "supplier", "stations", "trips"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def declared_names() -> set[str]:
    names: set[str] = set()
    for source in REGISTRY.sources.values():
        for table in source.tables.values():
            names.update(c for c in table.column_names if "_" in c)  # l_discount, not "name"
            names.add(table.name)
    for model in REGISTRY.models.values():
        names.add(model.name)
        names.update(n for n, _ in model.columns if "_" in n)  # customer_key, not "year"
    return names - ENGLISH


FORBIDDEN = declared_names()


def _documentation(tree: ast.AST) -> set[int]:
    """The string constants that document: docstrings and bare string statements."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def mentions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    documentation = _documentation(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation:
            words = set(_WORD.findall(node.value))
        elif isinstance(node, ast.Name):
            words = {node.id}
        elif isinstance(node, ast.Attribute):
            words = {node.attr}
        else:
            continue
        found += [(getattr(node, "lineno", 0), w) for w in sorted(words & FORBIDDEN)]
    return found


@pytest.mark.parametrize("package", ENGINE)
def test_engine_code_names_no_declared_table_or_column(package: str) -> None:
    offenders = {
        f"{path.relative_to(ROOT)}:{line}": word
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, word in mentions(path)
    }
    assert offenders == {}


def test_the_check_finds_a_declared_name() -> None:
    assert {"l_discount", "lineitem", "dim_customer", "start_station_id"} <= FORBIDDEN
    assert "orders" not in FORBIDDEN  # an English word
