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
    DoubleType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
)

from checks.contracts import contract, gated_tables, merge_extra, write_contracts
from checks.errors import ContractError
from lakehouse.tables import TableDef
from tests.declared import REGISTRY

# Found without importing Soda (its import is slow and warns).
_SODA = importlib.util.find_spec("soda_core")
assert _SODA is not None and _SODA.origin is not None
SCHEMA_FILE = Path(_SODA.origin).parent / "contracts" / "soda_data_contract_json_schema_1_0_0.json"
GATED = gated_tables(REGISTRY)
DEFINITIONS = {t.identifier: t for t in REGISTRY.definitions()}
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
        TimestampType: "timestamp",
        DoubleType: "double",
        BooleanType: "boolean",
    }
    return {"data_type": names[type(kind)]}


def test_every_gated_table_gets_one_contract_file(contracts: dict[str, Path]) -> None:
    quarantine = [t for t in DEFINITIONS if t.startswith("quarantine.")]
    assert sorted(contracts) == sorted(set(DEFINITIONS) - set(quarantine))
    assert all(path.is_file() for path in contracts.values())


@pytest.mark.parametrize("identifier", GATED)
def test_contract_is_valid_against_soda_json_schema(
    identifier: str, contracts: dict[str, Path], validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(load(contracts[identifier]))]
    assert errors == []


@pytest.mark.parametrize("identifier", GATED)
def test_contract_columns_use_only_keys_soda_reads(identifier: str, contracts: dict[str, Path]) -> None:
    for column in load(contracts[identifier])["columns"]:
        assert set(column) <= COLUMN_KEYS, column["name"]


def test_schema_validation_catches_a_typo(
    contracts: dict[str, Path], validator: jsonschema.protocols.Validator
) -> None:
    document = load(contracts["silver.lineitem"])
    typo = copy.deepcopy(document)
    discount = next(c for c in typo["columns"] if c["name"] == "l_discount")
    discount["checks"][1]["invalid"]["valid_mx"] = discount["checks"][1]["invalid"].pop("valid_max")
    assert not list(validator.iter_errors(document))
    assert list(validator.iter_errors(typo))


def test_a_row_rule_and_its_check_come_from_one_declaration() -> None:
    # l_discount is declared 0..0.1 once: the contract checks that range, conform quarantines outside it
    discount = next(c for c in contract(REGISTRY, "silver.lineitem")["columns"] if c["name"] == "l_discount")
    assert {
        "invalid": {
            "name": "l_discount is between 0 and 0.1",
            "qualifier": "range",
            "valid_min": 0,
            "valid_max": 0.1,
        }
    } in discount["checks"]
    assert {"missing": None} in discount["checks"]
    rules = REGISTRY.table("silver.lineitem").column("l_discount").rules
    assert (rules.min, rules.max, rules.not_null) == (0, 0.1, True)


def test_extra_checks_of_the_source_are_merged_once(contracts: dict[str, Path]) -> None:
    document = load(contracts["silver.lineitem"])
    names = [(next(iter(c.values())) or {}).get("name") for c in document["checks"]]
    assert names.count("l_receiptdate is after l_shipdate") == 1
    gold = load(contracts["gold.dim_customer"])
    duplicates = [c for c in gold["checks"] if "duplicate" in c]
    assert len(duplicates) == 1  # derived from the SCD2 key; the same check in the extras is kept once


def test_extra_checks_naming_an_unknown_column_or_a_dataset_are_refused(tmp_path: Path) -> None:
    derived = contract(REGISTRY, "silver.orders")
    extra = tmp_path / "orders.yml"
    with pytest.raises(ContractError, match=r"orders.yml: column 'o_discount' is not a column"):
        merge_extra(derived, {"columns": [{"name": "o_discount", "checks": [{"missing": None}]}]}, extra)
    with pytest.raises(ContractError, match=r"orders.yml: dataset is derived"):
        merge_extra(derived, {"dataset": "lakehouse/silver/orders"}, extra)


def test_contracts_are_rewritten_only_when_they_change(tmp_path: Path) -> None:
    first = write_contracts(REGISTRY, tmp_path)
    stamp = first["silver.orders"].stat().st_mtime_ns
    second = write_contracts(REGISTRY, tmp_path)
    assert second == first
    assert first["silver.orders"].stat().st_mtime_ns == stamp


@pytest.mark.parametrize("identifier", GATED)
def test_contract_schema_matches_the_table_spec(identifier: str, contracts: dict[str, Path]) -> None:
    table: TableDef = DEFINITIONS[identifier]
    document = load(contracts[identifier])
    assert document["dataset"] == f"lakehouse/{table.namespace}/{table.name}"
    declared = [
        (c["name"], {k: v for k, v in c.items() if k not in ("name", "checks")}) for c in document["columns"]
    ]
    assert declared == [(f.name, expected_type(f.field_type)) for f in table.schema.fields]
    assert {"schema": None} in document["checks"]
    assert {"row_count": None} in document["checks"]
