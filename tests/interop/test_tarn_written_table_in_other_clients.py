"""A table that tarn writes over several commits (create, CSV append, pyarrow Parquet
append, JSON overwrite) reads the same, version by version, in python deltalake, DuckDB's
delta extension, polars and tarn itself."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from delta_rows import canonical_rows
from input_files import (
    ORDERS_COLUMNS,
    ORDERS_DELTA_FIELDS,
    ORDERS_SCHEMA,
    write_csv,
    write_jsonl,
    write_parquet,
)
from tarn_cli import TarnCli


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


CSV_ROWS = [
    {"id": 1, "name": "alpha", "amount": Decimal("10.50"), "ts": utc(2026, 1, 1, 9, 0, 0)},
    {"id": 2, "name": "beta", "amount": Decimal("0.05"), "ts": utc(2026, 1, 2, 10, 30, 0)},
    {"id": 3, "name": "gamma, with a comma", "amount": Decimal("-3.20"), "ts": utc(2026, 1, 3, 23, 59, 59)},
]
PARQUET_ROWS = [
    {"id": 4, "name": "ünïcödé ✓", "amount": Decimal("9999999999.99"), "ts": utc(2026, 2, 1, 0, 0, 0)},
    {"id": 5, "name": None, "amount": None, "ts": None},
]
OVERWRITE_ROWS = [
    {"id": 10, "name": "replaced", "amount": Decimal("7.25"), "ts": utc(2026, 3, 1, 12, 0, 0)},
    {"id": 11, "name": "also replaced", "amount": Decimal("100.00"), "ts": utc(2026, 3, 2, 12, 0, 0)},
]
EXPECTED_BY_VERSION = {
    0: [],
    1: CSV_ROWS,
    2: CSV_ROWS + PARQUET_ROWS,
    3: OVERWRITE_ROWS,
}
VERSIONS = sorted(EXPECTED_BY_VERSION)


@dataclass
class TarnWrittenTable:
    path: Path
    write_reports: list[dict[str, Any]]


@pytest.fixture(scope="module")
def tarn_table(tarn: TarnCli, tmp_path_factory: pytest.TempPathFactory) -> TarnWrittenTable:
    scratch = tmp_path_factory.mktemp("tarn-written")
    table = scratch / "orders"
    tarn.create(table, ORDERS_SCHEMA)
    reports = [
        tarn.write(table, write_csv(scratch / "january.csv", CSV_ROWS)),
        tarn.write(table, write_parquet(scratch / "february.parquet", PARQUET_ROWS)),
        tarn.write(table, write_jsonl(scratch / "march.jsonl", OVERWRITE_ROWS), mode="overwrite"),
    ]
    return TarnWrittenTable(table, reports)


def expected(version: int) -> list[dict[str, Any]]:
    return canonical_rows(EXPECTED_BY_VERSION[version], ORDERS_COLUMNS, source="expected")


def test_each_tarn_write_reports_its_new_version_and_row_count(tarn_table: TarnWrittenTable) -> None:
    got = [(r["version"], r["rows"]) for r in tarn_table.write_reports]
    assert got == [(1, len(CSV_ROWS)), (2, len(PARQUET_ROWS)), (3, len(OVERWRITE_ROWS))]


@pytest.mark.parametrize("version", VERSIONS)
def test_python_deltalake_reads_the_rows_and_schema_tarn_wrote_at_each_version(
    tarn_table: TarnWrittenTable, version: int
) -> None:
    table = DeltaTable(str(tarn_table.path), version=version)
    assert table.version() == version
    fields = [(f["name"], f["type"], f["nullable"]) for f in json.loads(table.schema().to_json())["fields"]]
    assert fields == ORDERS_DELTA_FIELDS
    rows = table.to_pyarrow_table().to_pylist()
    assert canonical_rows(rows, ORDERS_COLUMNS, source=f"deltalake v{version}") == expected(version)


def test_python_deltalake_sees_the_overwrite_as_the_latest_version(tarn_table: TarnWrittenTable) -> None:
    table = DeltaTable(str(tarn_table.path))
    assert table.version() == VERSIONS[-1]
    rows = table.to_pyarrow_table().to_pylist()
    assert canonical_rows(rows, ORDERS_COLUMNS, source="deltalake latest") == expected(VERSIONS[-1])


@pytest.mark.parametrize("version", VERSIONS)
def test_duckdb_delta_scan_reads_the_rows_tarn_wrote_at_each_version(
    tarn_table: TarnWrittenTable, duckdb_delta: Any, version: int
) -> None:
    rows = duckdb_delta.scan(tarn_table.path, version=version)
    assert canonical_rows(rows, ORDERS_COLUMNS, source=f"duckdb v{version}") == expected(version)


def test_duckdb_delta_scan_reads_the_latest_version_tarn_wrote(tarn_table: TarnWrittenTable, duckdb_delta: Any) -> None:
    rows = duckdb_delta.scan(tarn_table.path)
    assert canonical_rows(rows, ORDERS_COLUMNS, source="duckdb latest") == expected(VERSIONS[-1])


@pytest.mark.parametrize("version", VERSIONS)
def test_polars_reads_the_rows_tarn_wrote_at_each_version(tarn_table: TarnWrittenTable, version: int) -> None:
    rows = pl.read_delta(str(tarn_table.path), version=version).to_dicts()
    assert canonical_rows(rows, ORDERS_COLUMNS, source=f"polars v{version}") == expected(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_tarn_query_reads_its_own_table_at_each_version(
    tarn: TarnCli, tarn_table: TarnWrittenTable, version: int
) -> None:
    rows = tarn.query("SELECT * FROM orders", {"orders": tarn_table.path}, version=version)
    assert canonical_rows(rows, ORDERS_COLUMNS, source=f"tarn v{version}", nulls_may_be_omitted=True) == expected(
        version
    )


def test_tarn_history_lists_every_commit_newest_first(tarn: TarnCli, tarn_table: TarnWrittenTable) -> None:
    versions = [c["version"] for c in tarn.history(tarn_table.path)]
    assert versions == sorted(VERSIONS, reverse=True)
