"""Tables on S3 (moto's server on loopback): tarn creates, writes and queries them, python
deltalake reads them, and concurrent appenders lose no commit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from deltalake import DeltaTable

from concurrent_appends import assert_every_append_landed, race_appends
from delta_rows import canonical_rows
from input_files import ORDERS_COLUMNS, ORDERS_SCHEMA, write_csv
from tarn_cli import TarnCli

ROWS = [
    {"id": 1, "name": "on s3", "amount": Decimal("12.34"), "ts": "2026-05-01T08:00:00Z"},
    {"id": 2, "name": "also on s3", "amount": Decimal("0.01"), "ts": "2026-05-02T08:00:00Z"},
]


def test_tarn_creates_writes_and_queries_a_table_on_s3(tarn_s3: TarnCli, s3, tmp_path: Path) -> None:
    url = s3.url("roundtrip")
    tarn_s3.create(url, ORDERS_SCHEMA)
    report = tarn_s3.write(url, write_csv(tmp_path / "rows.csv", ROWS))
    assert (report["version"], report["rows"]) == (1, len(ROWS))

    want = canonical_rows(ROWS, ORDERS_COLUMNS, source="expected")
    rows = tarn_s3.query("SELECT * FROM t", {"t": url})
    assert canonical_rows(rows, ORDERS_COLUMNS, source="tarn on s3", nulls_may_be_omitted=True) == want
    assert tarn_s3.query("SELECT * FROM t", {"t": url}, version=0) == []

    keys = s3.keys("roundtrip/_delta_log/")
    assert "roundtrip/_delta_log/00000000000000000000.json" in keys
    assert "roundtrip/_delta_log/00000000000000000001.json" in keys

    table = DeltaTable(url, storage_options=s3.deltalake_storage_options())
    assert table.version() == 1
    assert canonical_rows(table.to_pyarrow_table().to_pylist(), ORDERS_COLUMNS, source="deltalake on s3") == want


def test_concurrent_tarn_appends_on_s3_all_land_with_contiguous_versions(
    tarn_s3: TarnCli, s3, tmp_path: Path
) -> None:
    url = s3.url("concurrent")
    tarn_s3.create(url, ORDERS_SCHEMA)
    race = race_appends(tarn_s3, url, tmp_path, writers=2, appends=5)
    assert_every_append_landed(tarn_s3, url, race)
