"""Tables on S3 (moto's server on loopback): tarn creates, writes and queries them, python
deltalake reads them, and concurrent appenders lose no commit."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from deltalake import DeltaTable

from concurrent_appends import assert_every_append_landed, race_appends
from delta_rows import canonical_rows
from input_files import ORDERS_COLUMNS, ORDERS_SCHEMA, write_csv
from tarn_cli import TarnCli
from tarn_server import TarnServer

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


def test_a_server_reads_s3_tables_with_the_storage_options_it_was_given(
    tarn_s3: TarnCli, s3, tmp_path: Path, monkeypatch
) -> None:
    """`tarn --storage-option aws_endpoint=... serve` reaches the registered S3 tables with
    those options (the endpoint is not in the environment), for every table at once."""
    g = ["--warehouse", str(tmp_path / "wh")]
    tarn_s3.run(*g, "catalog", "create", "main")
    tarn_s3.run(*g, "schema", "create", "main.lake")
    for i in range(3):
        url = s3.url(f"served/t{i}")
        tarn_s3.create(url, ORDERS_SCHEMA)
        tarn_s3.run(*g, "register", f"main.lake.t{i}", url)
    token = tarn_s3.run_json(*g, "token", "create", "reader", "--scope", "read")["token"]
    # Credentials from the environment, as a user would; the endpoint only as an option.
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    options = [arg for k, v in s3.tarn_storage_options().items() for arg in ("--storage-option", f"{k}={v}")]
    server = TarnServer(tarn_s3.binary, *g, *options, extra=("--allow-location", s3.url("served")))
    try:
        status, table = server.request("GET", "/api/2.1/unity-catalog/tables/main.lake.t1", token)
        assert status == 200, table
        assert [c["name"] for c in table["columns"]] == list(ORDERS_COLUMNS)
        status, listed = server.request(
            "GET", "/api/2.1/unity-catalog/tables?catalog_name=main&schema_name=lake", token
        )
        assert status == 200, listed
        assert [t["name"] for t in listed["tables"]] == ["t0", "t1", "t2"]
        assert all([c["name"] for c in t["columns"]] == list(ORDERS_COLUMNS) for t in listed["tables"])
    finally:
        assert server.stop() == 0
