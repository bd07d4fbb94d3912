"""Tables on S3 (moto's server on loopback): tarn creates, writes and queries them, python
deltalake reads them, concurrent appenders lose no commit, and a server serves them to
Unity Catalog and Iceberg clients (pyiceberg, DuckDB) that read the files from S3."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from concurrent_appends import assert_every_append_landed, race_appends
from delta_rows import as_str, canonical_rows
from input_files import ORDERS_COLUMNS, ORDERS_SCHEMA, write_csv
from tarn_cli import TarnCli
from tarn_server import TarnServer
from test_iceberg import duckdb_with_iceberg

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


def serve_s3(tarn_s3: TarnCli, s3, g: list[str], allowed: str, monkeypatch) -> TarnServer:
    """`tarn serve` of the warehouse `g` with the S3 endpoint as `--storage-option`s, the
    credentials in the environment (as a user would set them) and `allowed` as the one
    allowed location."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    options = [arg for k, v in s3.tarn_storage_options().items() for arg in ("--storage-option", f"{k}={v}")]
    return TarnServer(tarn_s3.binary, *g, *options, extra=("--allow-location", allowed))


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
    server = serve_s3(tarn_s3, s3, g, s3.url("served"), monkeypatch)
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


ICEBERG_COLUMNS = {**ORDERS_COLUMNS, "region": as_str}


def iceberg_rows(first: int, n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"n{i}" if i % 4 else None, "amount": Decimal(f"{i}.{i % 100:02d}"),
         "ts": f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:15:00Z", "region": ["eu", "us"][i % 2]}
        for i in range(first, first + n)
    ]


def test_the_iceberg_catalog_serves_s3_tables_that_pyiceberg_and_duckdb_read_from_s3(
    tarn_s3: TarnCli, s3, tmp_path: Path, monkeypatch
) -> None:
    """A Delta table on S3, registered and served: pyiceberg and DuckDB load it through
    `/iceberg`, read its data files from S3 and get `tarn query`'s rows at every version;
    the Iceberg metadata the server derives is written to S3 beside the table."""
    from pyiceberg.catalog import load_catalog

    g = ["--warehouse", str(tmp_path / "wh")]
    url = s3.url("ice/orders")
    tarn_s3.run(*g, "catalog", "create", "main")
    tarn_s3.run(*g, "schema", "create", "main.lake")
    tarn_s3.create(url, f"{ORDERS_SCHEMA}, region string", "--partition-by", "region")
    tarn_s3.write(url, write_csv(tmp_path / "a.csv", iceberg_rows(1, 6)))
    tarn_s3.run(*g, "register", "main.lake.orders", url)
    token = tarn_s3.run_json(*g, "token", "create", "ice", "--scope", "read")["token"]
    server = serve_s3(tarn_s3, s3, g, s3.url("ice"), monkeypatch)

    def tarn_rows(version: int) -> list[dict[str, Any]]:
        rows = tarn_s3.query("SELECT * FROM t", {"t": url}, version=version)
        return canonical_rows(rows, ICEBERG_COLUMNS, source=f"tarn query, version {version}", nulls_may_be_omitted=True)

    try:
        catalog = load_catalog(
            "tarn", type="rest", uri=f"{server.url}/iceberg", warehouse="main", token=token,
            **{"s3.endpoint": s3.endpoint, "s3.access-key-id": s3.access_key_id,
               "s3.secret-access-key": s3.secret_access_key, "s3.region": s3.region},
        )
        table = catalog.load_table("lake.orders")
        assert table.metadata_location.startswith(f"{url}/_tarn_iceberg/"), table.metadata_location
        assert [f.name for f in table.spec().fields] == ["region"]
        got = canonical_rows(table.scan().to_arrow().to_pylist(), ICEBERG_COLUMNS, source="pyiceberg")
        assert len(got) == 6 and got == tarn_rows(1)

        tarn_s3.write(url, write_csv(tmp_path / "b.csv", iceberg_rows(7, 5)))
        table = catalog.load_table("lake.orders")
        assert table.current_snapshot().snapshot_id == 3
        snapshots = {s.snapshot_id: s for s in table.snapshots()}
        assert sorted(snapshots) == [1, 2, 3], "one snapshot per Delta version, id = version + 1"
        counts = []
        for v in range(3):
            assert snapshots[v + 1].summary["delta-version"] == str(v)
            got = canonical_rows(table.scan(snapshot_id=v + 1).to_arrow().to_pylist(), ICEBERG_COLUMNS,
                                 source=f"pyiceberg snapshot {v + 1}")
            assert got == tarn_rows(v), f"version {v}"
            counts.append(len(got))
        assert counts == [0, 6, 11]
        eu = table.scan(row_filter="region = 'eu'")
        assert 0 < len(list(eu.plan_files())) < len(list(table.scan().plan_files())), "the partitions prune"

        # The derived metadata is on S3, in one folder under the table's `_tarn_iceberg/`.
        keys = s3.keys("ice/orders/_tarn_iceberg/")
        folder = table.metadata_location[len(s3.url("")):].split("/metadata/")[0]
        assert folder.startswith("ice/orders/_tarn_iceberg/") and folder.count("/") == 3, folder
        assert [k for k in keys if not k.startswith(folder + "/")] == []
        assert [k for k in keys if "/versions/" in k] == [f"{folder}/versions/{v:020}.json" for v in range(3)]
        assert f"{folder}/metadata/v{2:020}.metadata.json" in keys
        assert table.metadata_location == s3.url(f"{folder}/metadata/v{2:020}.metadata.json")
        for kind in ("manifests", "lists"):
            assert any(k.startswith(f"{folder}/{kind}/") for k in keys), f"no {kind} in {keys}"

        con = duckdb_with_iceberg(tmp_path / "ext")
        endpoint = s3.endpoint.removeprefix("http://")
        con.execute(f"CREATE SECRET (TYPE s3, KEY_ID '{s3.access_key_id}', SECRET '{s3.secret_access_key}', "
                    f"REGION '{s3.region}', ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)")
        con.execute(f"CREATE SECRET (TYPE iceberg, TOKEN '{token}')")
        con.execute(f"ATTACH 'main' AS ice (TYPE iceberg, ENDPOINT '{server.url}/iceberg')")
        for v, at in ((0, " AT (VERSION => 1)"), (1, " AT (VERSION => 2)"), (2, "")):
            got = con.execute(f"SELECT * FROM ice.lake.orders{at}").to_arrow_table().to_pylist()
            assert canonical_rows(got, ICEBERG_COLUMNS, source=f"duckdb{at}") == tarn_rows(v), f"version {v}"
        con.close()
    finally:
        assert server.stop() == 0
