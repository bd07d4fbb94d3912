"""A table written by python deltalake (two commits, then a third adding a column with
schema_mode="merge") is read by `tarn query` at each version and by timestamp, and
appended to by `tarn write`; python deltalake then reads tarn's commit."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from delta_rows import (
    Converter,
    as_decimal,
    as_int,
    as_str,
    canonical_rows,
    commit_time_ms,
    rfc3339_at_or_after,
)
from input_files import write_csv
from tarn_cli import TarnCli

# More than a second between commits, so a whole-second --as-of falls between two of them.
SECONDS_BETWEEN_COMMITS = 1.1

BASE_COLUMNS: dict[str, Converter] = {"id": as_int, "name": as_str, "amount": as_decimal(2)}
MERGED_COLUMNS: dict[str, Converter] = {**BASE_COLUMNS, "note": as_str}
COLUMNS_BY_VERSION = {0: BASE_COLUMNS, 1: BASE_COLUMNS, 2: MERGED_COLUMNS, 3: MERGED_COLUMNS}

BASE_ARROW = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(12, 2))])
MERGED_ARROW = BASE_ARROW.append(pa.field("note", pa.string()))

COMMIT_0 = [
    {"id": 1, "name": "ann", "amount": Decimal("1.10")},
    {"id": 2, "name": "bob", "amount": None},
]
COMMIT_1 = [{"id": 3, "name": "cy", "amount": Decimal("3.30")}]
COMMIT_2 = [{"id": 4, "name": "di", "amount": Decimal("4.40"), "note": "first with a note"}]
TARN_APPEND = [
    {"id": 5, "name": "ed", "amount": Decimal("5.50"), "note": "written by tarn"},
    {"id": 6, "name": "flo", "amount": Decimal("-6.60"), "note": "also by tarn"},
]


def with_note(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "note": r.get("note")} for r in rows]


EXPECTED_BY_VERSION = {
    0: COMMIT_0,
    1: COMMIT_0 + COMMIT_1,
    2: with_note(COMMIT_0 + COMMIT_1) + COMMIT_2,
    3: with_note(COMMIT_0 + COMMIT_1) + COMMIT_2 + TARN_APPEND,
}


def expected(version: int) -> list[dict[str, Any]]:
    return canonical_rows(EXPECTED_BY_VERSION[version], COLUMNS_BY_VERSION[version], source="expected")


@dataclass
class DeltalakeWrittenTable:
    path: Path
    commit_ms: dict[int, int]  # version -> commitInfo timestamp, as python deltalake reports it


@pytest.fixture(scope="module")
def deltalake_table(tmp_path_factory: pytest.TempPathFactory) -> DeltalakeWrittenTable:
    path = tmp_path_factory.mktemp("deltalake-written") / "people"
    write_deltalake(str(path), pa.Table.from_pylist(COMMIT_0, schema=BASE_ARROW))
    time.sleep(SECONDS_BETWEEN_COMMITS)
    write_deltalake(str(path), pa.Table.from_pylist(COMMIT_1, schema=BASE_ARROW), mode="append")
    time.sleep(SECONDS_BETWEEN_COMMITS)
    write_deltalake(
        str(path), pa.Table.from_pylist(COMMIT_2, schema=MERGED_ARROW), mode="append", schema_mode="merge"
    )
    table = DeltaTable(str(path))
    assert table.version() == 2
    commit_ms = {c["version"]: c["timestamp"] for c in table.history()}
    return DeltalakeWrittenTable(path, commit_ms)


def tarn_rows(tarn: TarnCli, path: Path, columns: dict[str, Converter], source: str, **travel: Any) -> list[dict]:
    rows = tarn.query("SELECT * FROM people", {"people": path}, **travel)
    return canonical_rows(rows, columns, source=source, nulls_may_be_omitted=True)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_tarn_query_reads_each_version_python_deltalake_wrote(
    tarn: TarnCli, deltalake_table: DeltalakeWrittenTable, version: int
) -> None:
    rows = tarn_rows(tarn, deltalake_table.path, COLUMNS_BY_VERSION[version], f"tarn v{version}", version=version)
    assert rows == expected(version)


def test_tarn_query_reads_the_latest_version_with_the_merged_column(
    tarn: TarnCli, deltalake_table: DeltalakeWrittenTable
) -> None:
    assert tarn_rows(tarn, deltalake_table.path, MERGED_COLUMNS, "tarn latest") == expected(2)


@pytest.mark.parametrize("version", [0, 1])
def test_tarn_query_as_of_a_time_between_commits_returns_the_earlier_version(
    tarn: TarnCli, deltalake_table: DeltalakeWrittenTable, version: int
) -> None:
    as_of = rfc3339_at_or_after(deltalake_table.commit_ms[version])
    assert deltalake_table.commit_ms[version + 1] > commit_time_ms(as_of), "commits too close together for this test"
    rows = tarn_rows(tarn, deltalake_table.path, COLUMNS_BY_VERSION[version], f"tarn --as-of {as_of}", as_of=as_of)
    assert rows == expected(version)


def test_tarn_appends_to_a_python_deltalake_table_and_deltalake_reads_it_back(
    tarn: TarnCli, deltalake_table: DeltalakeWrittenTable, tmp_path: Path
) -> None:
    path = tmp_path / "people"
    shutil.copytree(deltalake_table.path, path)  # the other tests keep the original as it is

    report = tarn.write(path, write_csv(tmp_path / "more.csv", TARN_APPEND))
    assert (report["version"], report["rows"]) == (3, len(TARN_APPEND))

    table = DeltaTable(str(path))
    assert table.version() == 3
    assert canonical_rows(table.to_pyarrow_table().to_pylist(), MERGED_COLUMNS, source="deltalake v3") == expected(3)
    for version in (0, 1, 2):
        old = DeltaTable(str(path), version=version).to_pyarrow_table().to_pylist()
        assert canonical_rows(old, COLUMNS_BY_VERSION[version], source=f"deltalake v{version}") == expected(version)
    assert tarn_rows(tarn, path, MERGED_COLUMNS, "tarn after its append") == expected(3)



# Tables whose files do not hold the logical columns as they are: column mapping (the
# Parquet columns carry physical names) and partitioning (values live in the log). Tarn
# reads plain tables straight from their Parquet files, so these must take the reader that
# applies the protocol's transforms.
MAPPED_ROWS = [
    {"id": 1, "first name": "ann", "day": "2026-01-01"},
    {"id": 2, "first name": "bob", "day": "2026-01-02"},
    {"id": 3, "first name": None, "day": "2026-01-02"},
]
MAPPED_ARROW = pa.schema([("id", pa.int64()), ("first name", pa.string()), ("day", pa.string())])


@pytest.mark.parametrize(
    "options",
    [
        {"configuration": {"delta.columnMapping.mode": "name"}},
        {"partition_by": ["day"]},
    ],
    ids=["column-mapping", "partitioned"],
)
def test_tarn_query_reads_column_mapped_and_partitioned_tables(
    tarn: TarnCli, tmp_path: Path, options: dict[str, Any]
) -> None:
    path = tmp_path / "people"
    write_deltalake(str(path), pa.Table.from_pylist(MAPPED_ROWS, schema=MAPPED_ARROW), **options)
    table = DeltaTable(str(path))
    if "configuration" in options:
        physical = [f.metadata.get("delta.columnMapping.physicalName") for f in table.schema().fields]
        assert all(physical) and "first name" not in physical, f"not column-mapped: {physical}"
    rows = tarn.query('SELECT id, "first name", day FROM people ORDER BY id', {"people": path})
    assert rows == MAPPED_ROWS
    filtered = tarn.query(
        """SELECT id FROM people WHERE day = '2026-01-02' AND "first name" IS NULL""", {"people": path}
    )
    assert filtered == [{"id": 3}]
