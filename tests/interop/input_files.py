"""Input files for `tarn write`, made the way users make them (CSV by hand, Parquet with
pyarrow, newline-delimited JSON with `json.dumps`), and the `orders` table they fill."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from delta_rows import as_decimal, as_int, as_str, as_utc_timestamp

# The table every tarn-created test table has, and its pyarrow equivalent.
ORDERS_SCHEMA = "id bigint not null, name string, amount decimal(12,2), ts timestamp"
ORDERS_ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)
# How to compare its rows across clients (see delta_rows.canonical_rows).
ORDERS_COLUMNS = {"id": as_int, "name": as_str, "amount": as_decimal(2), "ts": as_utc_timestamp}
# The same columns in Delta's own schema JSON: (name, type, nullable).
ORDERS_DELTA_FIELDS = [
    ("id", "long", False),
    ("name", "string", True),
    ("amount", "decimal(12,2)", True),
    ("ts", "timestamp", True),
]


def csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """CSV with a header line; None becomes an empty field, timestamps RFC 3339 UTC."""
    columns = list(rows[0])
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_text(row[c]) for c in columns])
    return path


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One JSON object a line; decimals as JSON numbers, timestamps as RFC 3339 strings."""

    def encode(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return float(value)
        if isinstance(value, dt.datetime):
            return csv_text(value)
        return value

    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps({k: encode(v) for k, v in row.items()}) + "\n")
    return path


def write_parquet(path: Path, rows: Sequence[Mapping[str, Any]], schema: pa.Schema = ORDERS_ARROW_SCHEMA) -> Path:
    """Parquet written by pyarrow (nullable columns, as pyarrow makes them by default)."""
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), path)
    return path
