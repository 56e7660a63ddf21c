"""The contract files: valid against Soda's JSON schema, and in step with the table specs."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestamptzType,
)

from checks.gate import CONTRACTS_DIR, contract_path
from lakehouse.tables import QUARANTINE, TableDef, all_tables

# Found without importing Soda (its import is slow and warns).
_SODA = importlib.util.find_spec("soda_core")
assert _SODA is not None and _SODA.origin is not None
SCHEMA_FILE = Path(_SODA.origin).parent / "contracts" / "soda_data_contract_json_schema_1_0_0.json"
GATED = [t for t in all_tables() if t.namespace != QUARANTINE]
CONTRACTS = sorted(CONTRACTS_DIR.glob("*/*.yml"))
# Column keys Soda reads (soda_core ColumnYaml); the JSON schema does not close the column object,
# so a typo there would pass it and be ignored (soda-core #2810).
COLUMN_KEYS = {
    "name",
    "description",
    "data_type",
    "character_maximum_length",
    "numeric_precision",
    "numeric_scale",
    "optional",
    "checks",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def expected_type(kind: IcebergType) -> dict[str, Any]:
    if isinstance(kind, DecimalType):
        return {"data_type": "decimal", "numeric_precision": kind.precision, "numeric_scale": kind.scale}
    names = {
        LongType: "bigint",
        IntegerType: "integer",
        DateType: "date",
        StringType: "varchar",
        TimestamptzType: "timestamp_tz",
        BooleanType: "boolean",
    }
    return {"data_type": names[type(kind)]}


def test_every_gated_table_has_a_contract_and_no_contract_is_stray() -> None:
    assert sorted(contract_path(t.identifier) for t in GATED) == CONTRACTS
    assert len(CONTRACTS) == len(GATED)


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: f"{p.parent.name}.{p.stem}")
def test_contract_is_valid_against_soda_json_schema(
    path: Path, validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(load(path))]
    assert errors == []


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: f"{p.parent.name}.{p.stem}")
def test_contract_columns_use_only_keys_soda_reads(path: Path) -> None:
    for column in load(path)["columns"]:
        assert set(column) <= COLUMN_KEYS, column["name"]


def test_schema_validation_catches_a_typo(validator: jsonschema.protocols.Validator) -> None:
    document = load(contract_path("silver.lineitem"))
    typo = copy.deepcopy(document)
    discount = next(c for c in typo["columns"] if c["name"] == "l_discount")
    discount["checks"][1]["invalid"]["valid_mx"] = discount["checks"][1]["invalid"].pop("valid_max")
    assert not list(validator.iter_errors(document))
    assert list(validator.iter_errors(typo))


@pytest.mark.parametrize("table", GATED, ids=lambda t: t.identifier)
def test_contract_schema_matches_the_table_spec(table: TableDef) -> None:
    document = load(contract_path(table.identifier))
    assert document["dataset"] == f"lakehouse/{table.namespace}/{table.name}"
    declared = [
        (c["name"], {k: v for k, v in c.items() if k not in ("name", "checks")}) for c in document["columns"]
    ]
    assert declared == [(f.name, expected_type(f.field_type)) for f in table.schema.fields]
    assert {"schema": None} in document["checks"]
    assert {"row_count": None} in document["checks"]
