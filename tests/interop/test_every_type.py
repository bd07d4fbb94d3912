"""Every Delta type through `tarn query` in the three output formats, value by value.

The truth for each table is what another reader gets: python deltalake for the tables
Tarn and deltalake write here, and Spark's own answer (`expected/`) for the Spark-written
tables under tests/data/spark-golden (column mapping in `name` and `id` mode, deletion
vectors, maps with non-string keys, deep nesting). JSON output is parsed with `json`, CSV
with `csv`, and both must give back every value as docs/cli.md ("How values are printed")
says: floats that are not finite as "NaN"/"Infinity"/"-Infinity", binary as lowercase hex,
decimals and integers as exact numbers, maps with string keys as objects and others as
lists of {"key", "value"}, and in CSV nested values as their JSON text.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from tarn_cli import TarnCli, describe
from typed_values import EXACT, UTC, float_canon, from_json, rows_of, sort_key, timestamp_text

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "spark-golden"

# --- what each printed value must be, per arrow type -------------------------------------


def empty_is_text(t: pa.DataType) -> bool:
    """Whether an empty CSV cell of this type reads as an empty value rather than null."""
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def from_csv(cell: str, t: pa.DataType) -> Any:
    """A CSV cell in the form of `canon` (an empty cell is null, or an empty string)."""
    if cell == "":
        return "" if empty_is_text(t) else None
    if pa.types.is_nested(t):
        return from_json(json.loads(cell, parse_float=decimal.Decimal), t)
    if pa.types.is_floating(t):
        v = float(cell)
        return float_canon(float(np.float32(v)) if pa.types.is_float32(t) else v)
    if pa.types.is_decimal(t):
        return decimal.Decimal(cell).normalize(EXACT)
    if pa.types.is_integer(t):
        return int(cell)
    if pa.types.is_boolean(t):
        assert cell in ("true", "false"), cell
        return cell == "true"
    if pa.types.is_timestamp(t):
        return timestamp_text(cell, t)
    return cell


def empty_strings_as_null(rows: list[dict[str, Any]], schema: pa.Schema) -> list[dict[str, Any]]:
    """CSV prints a null string (or binary) and an empty one alike."""
    text = {f.name for f in schema if empty_is_text(f.type)}
    return [{k: ("" if k in text and v is None else v) for k, v in r.items()} for r in rows]


def check_every_format(tarn: TarnCli, table: Path | str, truth: pa.Table) -> None:
    """`SELECT *` over `table` in json, csv and table gives back `truth`, value by value."""
    schema = truth.schema
    want = sorted(rows_of(truth), key=sort_key)
    sql = "SELECT * FROM t"
    spec = f"t={table}"

    proc = tarn.run("query", sql, "--table", spec)
    printed = json.loads(proc.stdout, parse_float=decimal.Decimal)
    assert isinstance(printed, list) and len(printed) == truth.num_rows, proc.stdout[:2000]
    got = []
    for row in printed:
        assert list(row) == schema.names, f"columns {list(row)} != {schema.names}"
        got.append({f.name: from_json(row[f.name], f.type) for f in schema})
    got.sort(key=sort_key)
    for g, w in zip(got, want):
        assert g == w, f"JSON row differs:\n tarn: {g}\n want: {w}"

    proc = run_in_format(tarn, "csv", "query", sql, "--table", spec)
    records = list(csv.reader(io.StringIO(proc.stdout, newline="")))
    assert records[0] == schema.names, records[0]
    assert len(records) - 1 == truth.num_rows
    got = sorted(
        ({f.name: from_csv(cell, f.type) for f, cell in zip(schema, r, strict=True)} for r in records[1:]),
        key=sort_key,
    )
    want_csv = sorted(empty_strings_as_null(rows_of(truth), schema), key=sort_key)
    for g, w in zip(got, want_csv):
        assert g == w, f"CSV row differs:\n tarn: {g}\n want: {w}"

    proc = run_in_format(tarn, "table", "query", sql, "--table", spec)
    lines = proc.stdout.rstrip("\n").split("\n")
    assert lines[-1] == f"({truth.num_rows} row{'' if truth.num_rows == 1 else 's'})", lines[-1]
    body = lines[:-1]
    widths = {display_width(line) for line in body}
    assert len(widths) == 1, f"the text table's lines should all be as wide: {sorted(widths)}"
    assert widths.pop() <= (80 + 3) * len(schema) + 1


def run_in_format(tarn: TarnCli, fmt: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs `tarn --format FMT ARGS...`, which must succeed."""
    cmd = [str(tarn.binary), "--format", fmt, *args]
    proc = subprocess.run(cmd, env=tarn.environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, describe(proc, "exited with a failure")
    return proc


def display_width(line: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


# --- a table of every type ----------------------------------------------------------------

EVERY_TYPE = pa.schema(
    [
        pa.field("id", pa.int32(), nullable=False),
        pa.field("b", pa.bool_()),
        pa.field("i8", pa.int8()),
        pa.field("i16", pa.int16()),
        pa.field("i32", pa.int32()),
        pa.field("i64", pa.int64()),
        pa.field("f32", pa.float32()),
        pa.field("f64", pa.float64()),
        pa.field("d1", pa.decimal128(1, 0)),
        pa.field("d18", pa.decimal128(18, 6)),
        pa.field("d38", pa.decimal128(38, 10)),
        pa.field("d38s0", pa.decimal128(38, 0)),
        pa.field("s", pa.string()),
        pa.field("bin", pa.binary()),
        pa.field("day", pa.date32()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("ts_ntz", pa.timestamp("us")),
        pa.field("ints", pa.list_(pa.int64())),
        pa.field("by_name", pa.map_(pa.string(), pa.float64())),
        pa.field("by_int", pa.map_(pa.int32(), pa.list_(pa.struct([("val", pa.int32())])))),
        pa.field("by_float", pa.map_(pa.float32(), pa.float64())),
        pa.field("by_date", pa.map_(pa.date32(), pa.string())),
        pa.field(
            "deep",
            pa.struct(
                [
                    ("name", pa.string()),
                    ("tags", pa.list_(pa.map_(pa.int64(), pa.struct([("bytes", pa.binary()), ("at", pa.timestamp("us", tz="UTC"))])))),
                    ("inner", pa.struct([("d", pa.decimal128(38, 18)), ("xs", pa.list_(pa.list_(pa.float32())))])),
                ]
            ),
        ),
    ]
)


def every_type_rows() -> pa.Table:
    d = decimal.Decimal
    big = d("9" * 28 + "." + "9" * 10)
    rows = [
        {
            "id": 1,
            "b": True,
            "i8": -128,
            "i16": -32768,
            "i32": -(2**31),
            "i64": 2**63 - 1,
            "f32": 3.4028234663852886e38,
            "f64": 0.1,
            "d1": d("9"),
            "d18": d("-123456789012.123456"),
            "d38": big,
            "d38s0": d("-" + "9" * 38),
            "s": 'comma, "quote"\nnew line ünïcødé 日本',
            "bin": bytes(range(256)),
            "day": dt.date(1, 1, 1),
            "ts": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "ts_ntz": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            "ints": [9007199254740993, -1, None],
            "by_name": [("a,b", 1.5), ('q"uote', None), ("nan", float("nan"))],
            "by_int": [(1, [{"val": 1}, None, {"val": None}]), (-7, []), (2, None)],
            "by_float": [(1.5, float("inf")), (-0.25, float("-inf"))],
            "by_date": [(dt.date(2026, 2, 28), "end of month")],
            "deep": {
                "name": "x" * 300,
                "tags": [[(2**62, {"bytes": b"\x00\xff", "at": dt.datetime(1970, 1, 1, tzinfo=UTC)})], [], None],
                "inner": {"d": d("12345678901234567890.123456789012345678"), "xs": [[1.25, None], []]},
            },
        },
        {
            "id": 2,
            "b": False,
            "i8": 127,
            "i16": 32767,
            "i32": 2**31 - 1,
            "i64": -(2**63),
            "f32": float("nan"),
            "f64": float("-inf"),
            "d1": d("-9"),
            "d18": d("0.000001"),
            "d38": d("-" + "9" * 28 + "." + "9" * 10),
            "d38s0": d("0"),
            "s": "",
            "bin": b"",
            "day": dt.date(9999, 12, 31),
            "ts": dt.datetime(1900, 1, 1, tzinfo=UTC),
            "ts_ntz": dt.datetime(1970, 1, 1),
            "ints": [],
            "by_name": [],
            "by_int": [],
            "by_float": [],
            "by_date": [],
            "deep": {"name": None, "tags": None, "inner": None},
        },
        {"id": 3, **{f.name: None for f in EVERY_TYPE if f.name != "id"}},
        {
            "id": 4,
            "b": None,
            "i8": 0,
            "i16": None,
            "i32": 0,
            "i64": 9007199254740993,
            "f32": float("inf"),
            "f64": 1e300,
            "d1": d("0"),
            "d18": None,
            "d38": d("0.0000000001"),
            "d38s0": d("1" + "0" * 37),
            "s": "tab\there",
            "bin": b"\x00",
            "day": None,
            "ts": None,
            "ts_ntz": dt.datetime(2026, 6, 1, 12, 0, 0, 1),
            "ints": None,
            "by_name": None,
            "by_int": None,
            "by_float": None,
            "by_date": None,
            "deep": None,
        },
    ]
    return pa.Table.from_pylist(rows, schema=EVERY_TYPE)


def test_a_tarn_written_table_of_every_type_prints_exactly_in_every_format(tarn: TarnCli, tmp_path: Path) -> None:
    source = tmp_path / "every.parquet"
    pq.write_table(every_type_rows(), source)
    table = tmp_path / "every"
    tarn.write(table, source, create=True)
    truth = DeltaTable(str(table)).to_pyarrow_table()
    assert truth.num_rows == 4
    check_every_format(tarn, table, truth)
    # What python deltalake reads is what was written.
    assert sorted(rows_of(truth.select(EVERY_TYPE.names).cast(EVERY_TYPE)), key=sort_key) == sorted(
        rows_of(every_type_rows()), key=sort_key
    )


@pytest.mark.parametrize("mode", ["none", "name", "id"])
def test_a_deltalake_written_table_of_every_type_prints_exactly_in_every_format(
    tarn: TarnCli, tmp_path: Path, mode: str
) -> None:
    table = tmp_path / f"every-{mode}"
    configuration = {}
    if mode != "none":
        configuration = {
            "delta.columnMapping.mode": mode,
            "delta.minReaderVersion": "2",
            "delta.minWriterVersion": "5",
        }
    write_deltalake(str(table), every_type_rows(), configuration=configuration)
    truth = DeltaTable(str(table)).to_pyarrow_table()
    assert truth.num_rows == 4
    check_every_format(tarn, table, truth)


# --- tables other writers made --------------------------------------------------------------


def golden(name: str, tmp_path: Path) -> tuple[Path, pa.Table]:
    """A Spark-written table (copied, so nothing can change the checked-in files) and
    Spark's answer for it."""
    table = tmp_path / name
    shutil.copytree(GOLDEN / name / "delta", table)
    parts = sorted((GOLDEN / name / "expected").glob("*.parquet"))
    expected = pa.concat_tables([pq.read_table(p) for p in parts])
    return table, expected.replace_schema_metadata(None)


SPARK_TABLES = [
    "parquet-all-types",
    "data-reader-map",
    "data-reader-nested-struct",
    "data-reader-array-complex-objects",
    "table-with-columnmapping-mode-name",
    "table-with-columnmapping-mode-id",
]


@pytest.mark.parametrize("name", SPARK_TABLES)
def test_spark_written_tables_print_exactly_what_spark_reads(tarn: TarnCli, tmp_path: Path, name: str) -> None:
    table, expected = golden(name, tmp_path)
    read = DeltaTable(str(table)).to_pyarrow_table()
    truth = expected.select(read.schema.names).cast(read.schema)
    if "columnmapping" not in name:
        # python deltalake agrees with Spark here; on the column-mapping tables it reads
        # every value as null (deltalake 1.6.6), so Spark's answer is the one truth.
        assert sorted(rows_of(read), key=sort_key) == sorted(rows_of(truth), key=sort_key)
    check_every_format(tarn, table, truth)


@pytest.mark.parametrize("name", ["dv-with-columnmapping", "dv-partitioned-with-checkpoint"])
def test_spark_written_tables_with_deletion_vectors_print_exactly_what_spark_reads(
    tarn: TarnCli, tmp_path: Path, name: str
) -> None:
    # python deltalake does not read deletion vectors: Spark's own answer is the truth.
    table, expected = golden(name, tmp_path)
    check_every_format(tarn, table, expected)
    # The table does delete rows through deletion vectors, which tarn applied.
    log = "".join(p.read_text() for p in (table / "_delta_log").glob("*.json"))
    assert '"deletionVector":{' in log
