"""The Soda side of the gate: run one contract on a DuckDB connection, parsing each contract file once.

Importing this module imports Soda, which reads ``SODA_CORE_TELEMETRY_ENABLED`` at import: the gate
imports it on first use, after the entry point has turned telemetry off.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
from soda_core.common.yaml import ContractYamlSource, FileType, YamlObject
from soda_core.contracts.contract_verification import ContractVerificationSession
from soda_duckdb.common.data_sources.duckdb_data_source import DuckDBDataSourceImpl

from checks.views import DATA_SOURCE


class _ParsedContractSource(ContractYamlSource, file_type=FileType.CONTRACT):  # type: ignore[misc,call-arg]
    """A contract source that hands Soda a fresh copy of an already parsed document.

    Parsing the YAML is a third of a verification's time; a pickled copy of the parsed document is
    restored in about a millisecond, and each verification still gets its own document to resolve
    variables in.
    """

    def __init__(self, path: Path, text: str, document: bytes) -> None:
        super().__init__(file_path=str(path), yaml_str=text)
        self._document = document

    def parse(self) -> Any:
        """A fresh copy of the parsed contract document."""
        return YamlObject(self, pickle.loads(self._document))


@lru_cache(maxsize=128)
def _parsed(path: Path, mtime_ns: int) -> tuple[str, bytes]:
    """The text and the pickled parsed document of a contract file (cached per modification time).

    Raises:
        YamlParserException: if the file is not valid YAML.
        OSError: if the file cannot be read.
    """
    text = path.read_text(encoding="utf-8")
    document = ContractYamlSource.from_str(text, file_path=str(path)).parse()
    return text, pickle.dumps(document.yaml_dict)


def verify(con: duckdb.DuckDBPyConnection, contract: Path, variables: Mapping[str, str | int | float]) -> Any:
    """Verify ``contract`` on the views of ``con`` (data source ``lakehouse``); Soda's session result.

    Same as ``verify_contract_locally`` with a data source, minus re-parsing the file and telemetry.

    Raises:
        YamlParserException: if the contract is not valid YAML.
        OSError: if the contract cannot be read.
    """
    text, document = _parsed(contract, contract.stat().st_mtime_ns)
    return ContractVerificationSession.execute(
        contract_yaml_sources=[_ParsedContractSource(contract, text, document)],
        data_source_impls=[DuckDBDataSourceImpl.from_existing_cursor(con, name=DATA_SOURCE)],
        variables=dict(variables),
    )
