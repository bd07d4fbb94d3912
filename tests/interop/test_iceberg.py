"""Tarn's Delta tables served as an Iceberg REST catalog (`/iceberg`), read by real Iceberg
clients: pyiceberg 0.12 and DuckDB 1.5.5 with its iceberg extension. Every snapshot (one
per Delta version, snapshot id = version + 1) must read exactly as `tarn query` reads that
version; a server killed while it writes the Iceberg files must serve correctly after a
restart."""

from __future__ import annotations

import decimal
import importlib
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from delta_rows import as_int, as_str, canonical_rows, commit_time_ms
from input_files import ORDERS_COLUMNS, ORDERS_SCHEMA, write_csv
from tarn_cli import TarnCli
from tarn_server import TarnServer
from typed_values import from_json, rows_of, sort_key

DATA = Path(__file__).resolve().parent.parent / "data"

EVOLVED_COLUMNS = {**ORDERS_COLUMNS, "note": as_str}
EVENTS_COLUMNS = {"id": as_int, "kind": as_str, "day": as_str}


def order_rows(first: int, n: int, note: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for i in range(first, first + n):
        row = {"id": i, "name": f"c{i % 3}", "amount": f"{i}.25", "ts": f"2026-01-0{1 + i % 9}T10:00:00Z"}
        if note is not None:
            row["note"] = f"{note}{i}"
        rows.append(row)
    return rows


@dataclass
class Warehouse:
    wh: Path
    token: str
    server: TarnServer
    tmp: Path

    def g(self) -> tuple[str, str]:
        return ("--warehouse", str(self.wh))


@pytest.fixture
def warehouse(tarn: TarnCli, tmp_path: Path) -> Iterator[Warehouse]:
    """main.shop.orders over 5 versions (create, 2 appends, a new column, an append with
    it), main.shop.events partitioned by kind; a read token and a running server."""
    wh = tmp_path / "wh"
    g = ("--warehouse", str(wh))
    tarn.run(*g, "catalog", "create", "main")
    tarn.run(*g, "schema", "create", "main.shop")
    tarn.run(*g, "create", "main.shop.orders", "--schema", ORDERS_SCHEMA)
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "a.csv", order_rows(1, 6)), "--no-progress")
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "b.csv", order_rows(7, 4)), "--no-progress")
    tarn.run(*g, "alter", "main.shop.orders", "add-column", "note string")
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "c.csv", order_rows(11, 3, note="n")), "--no-progress")
    tarn.run(*g, "create", "main.shop.events", "--schema", "id bigint, kind string, day string", "--partition-by", "kind")
    events = [{"id": i, "kind": ["click", "view", "buy"][i % 3], "day": f"2026-02-0{1 + i % 5}"} for i in range(30)]
    tarn.run(*g, "write", "main.shop.events", write_csv(tmp_path / "e.csv", events), "--no-progress")
    token = tarn.run_json(*g, "token", "create", "ice", "--scope", "read")["token"]
    server = TarnServer(tarn.binary, *g)
    yield Warehouse(wh, token, server, tmp_path)
    assert server.stop() == 0, "graceful shutdown on SIGTERM"


def catalog(w: Warehouse, server: TarnServer | None = None) -> Any:
    from pyiceberg.catalog import load_catalog

    s = server or w.server
    return load_catalog("tarn", type="rest", uri=f"{s.url}/iceberg", warehouse="main", token=w.token)


def tarn_rows(tarn: TarnCli, w: Warehouse, table: str, columns: dict, version: int | None = None) -> list[dict[str, Any]]:
    args = ["query", "SELECT * FROM t", "--table", f"t=main.shop.{table}"]
    if version is not None:
        args += ["--version", str(version)]
    rows = tarn.run_json(*w.g(), *args)
    return canonical_rows(rows, columns, source="tarn query", nulls_may_be_omitted=True)


def arrow_rows(table: Any, columns: dict, source: str) -> list[dict[str, Any]]:
    return canonical_rows(table.to_pylist(), columns, source=source)


def test_pyiceberg_lists_loads_and_reads_every_version_as_tarn_does(tarn: TarnCli, warehouse: Warehouse) -> None:
    w = warehouse
    cat = catalog(w)
    assert ("shop",) in cat.list_namespaces()
    assert sorted(cat.list_tables("shop")) == [("shop", "events"), ("shop", "orders")]
    table = cat.load_table("shop.orders")
    assert str(table.metadata_location).startswith("file://")
    assert "/_tarn_iceberg/" in table.metadata_location

    assert arrow_rows(table.scan().to_arrow(), EVOLVED_COLUMNS, "pyiceberg") == tarn_rows(tarn, w, "orders", EVOLVED_COLUMNS)
    filtered = table.scan(row_filter="id > 5", selected_fields=("id", "name")).to_arrow()
    assert sorted(filtered.column("id").to_pylist()) == list(range(6, 14))

    history = tarn.run_json(*w.g(), "history", "main.shop.orders")
    versions = sorted(c["version"] for c in history)
    assert versions == [0, 1, 2, 3, 4]
    snapshots = {s.snapshot_id: s for s in table.snapshots()}
    assert sorted(snapshots) == [v + 1 for v in versions], "one snapshot per Delta version, id = version + 1"
    for v in versions:
        assert snapshots[v + 1].summary["delta-version"] == str(v)
        columns = EVOLVED_COLUMNS if v >= 3 else ORDERS_COLUMNS
        got = arrow_rows(table.scan(snapshot_id=v + 1).to_arrow(), columns, f"pyiceberg snapshot {v + 1}")
        assert got == tarn_rows(tarn, w, "orders", columns, version=v), f"version {v}"
    # Time travel by timestamp: the snapshot as of each commit's time is that commit's.
    for commit in history:
        at = commit_time_ms(commit["timestamp"])
        snap = table.snapshot_as_of_timestamp(at)
        assert snap is not None and int(snap.summary["delta-version"]) <= commit["version"]


def test_pyiceberg_reads_partition_values_from_the_manifests_and_prunes_by_them(tarn: TarnCli, warehouse: Warehouse) -> None:
    w = warehouse
    table = catalog(w).load_table("shop.events")
    assert [f.name for f in table.spec().fields] == ["kind"]
    assert arrow_rows(table.scan().to_arrow(), EVENTS_COLUMNS, "pyiceberg") == tarn_rows(tarn, w, "events", EVENTS_COLUMNS)
    all_files = list(table.scan().plan_files())
    clicks = list(table.scan(row_filter="kind = 'click'").plan_files())
    assert 0 < len(clicks) < len(all_files), "a filter on the partition column prunes files"
    rows = table.scan(row_filter="kind = 'click'").to_arrow().to_pylist()
    assert len(rows) == 10 and {r["kind"] for r in rows} == {"click"}


def duckdb_with_iceberg(scratch: Path) -> Any:
    import duckdb

    con = duckdb.connect(config={"extension_directory": str(scratch), "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    for name in ("httpfs", "avro", "iceberg"):
        module = importlib.import_module(f"duckdb_extension_{name}")
        path = Path(module.__path__[0]) / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
        con.execute(f"INSTALL '{path}'")
        con.execute(f"LOAD {name}")
    return con


def test_duckdb_attaches_reads_every_version_and_sees_new_writes(tarn: TarnCli, warehouse: Warehouse) -> None:
    w = warehouse
    con = duckdb_with_iceberg(w.tmp / "ext")
    con.execute(f"CREATE SECRET (TYPE iceberg, TOKEN '{w.token}')")
    con.execute(f"ATTACH 'main' AS ice (TYPE iceberg, ENDPOINT '{w.server.url}/iceberg')")
    tables = con.execute("SHOW ALL TABLES").fetchall()
    assert any(t[0] == "ice" and t[1] == "shop" and t[2] == "orders" for t in tables), tables

    def duck(sql: str, columns: dict) -> list[dict[str, Any]]:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return canonical_rows([dict(zip(names, r)) for r in cur.fetchall()], columns, source="duckdb")

    assert duck("SELECT * FROM ice.shop.orders", EVOLVED_COLUMNS) == tarn_rows(tarn, w, "orders", EVOLVED_COLUMNS)
    for v in range(5):
        # Each snapshot reads with its own schema: `note` exists from version 3 on.
        columns = ORDERS_COLUMNS if v < 3 else EVOLVED_COLUMNS
        got = duck(f"SELECT * FROM ice.shop.orders AT (VERSION => {v + 1})", columns)
        assert got == tarn_rows(tarn, w, "orders", columns, version=v), f"version {v}"
    assert duck("SELECT * FROM ice.shop.events WHERE kind = 'view'", EVENTS_COLUMNS) == [
        r for r in tarn_rows(tarn, w, "events", EVENTS_COLUMNS) if r["kind"] == "view"
    ]

    tarn.run(*w.g(), "write", "main.shop.orders", write_csv(w.tmp / "d.csv", order_rows(20, 2, note="d")), "--no-progress")
    assert con.execute("SELECT count(*) FROM ice.shop.orders").fetchall() == [(15,)]


def http(server: TarnServer, method: str, path: str, token: str | None) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path, method=method, data=b"{}" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body else None


def test_errors_are_iceberg_errors_that_the_clients_understand(warehouse: Warehouse) -> None:
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    w = warehouse
    cat = catalog(w)
    with pytest.raises(NoSuchTableError):
        cat.load_table("shop.nope")
    with pytest.raises(NoSuchNamespaceError):
        cat.list_tables("nope")
    status, body = http(w.server, "GET", "/iceberg/v1/main/namespaces/shop/tables/nope", w.token)
    assert status == 404 and body["error"]["type"] == "NoSuchTableException" and body["error"]["code"] == 404
    status, body = http(w.server, "GET", "/iceberg/v1/main/namespaces/shop/tables/orders", None)
    assert status == 401 and body["error"]["type"] == "NotAuthorizedException"
    status, body = http(w.server, "POST", "/iceberg/v1/main/namespaces/shop/tables", w.token)
    assert status == 406 and body["error"]["type"] == "UnsupportedOperationException", body
    assert "read-only" in body["error"]["message"]
    status, body = http(w.server, "GET", "/iceberg/v1/config?warehouse=nope", w.token)
    assert status == 400 and body["error"]["type"] == "BadRequestException"
    status, _ = http(w.server, "HEAD", "/iceberg/v1/main/namespaces/shop/tables/orders", w.token)
    assert status == 204


@pytest.mark.parametrize("point", ["iceberg:manifests", "iceberg:list"])
def test_a_server_killed_while_it_writes_iceberg_files_serves_correctly_after_a_restart(
    tarn: TarnCli, warehouse: Warehouse, point: str
) -> None:
    w = warehouse
    dying = TarnServer(tarn.binary, *w.g(), env={"TARN_TEST_FAULT": point})
    with pytest.raises(Exception):
        catalog(w, dying).load_table("shop.orders")
    assert dying.process.wait(timeout=20) != 0, "the fault point killed the server"
    root = next((w.wh / "main" / "shop").glob("orders_*"))
    assert not list(root.glob("_tarn_iceberg/*/versions/*.json")), "no version was recorded complete"
    table = catalog(w).load_table("shop.orders")
    assert arrow_rows(table.scan().to_arrow(), EVOLVED_COLUMNS, "pyiceberg") == tarn_rows(tarn, w, "orders", EVOLVED_COLUMNS)
    assert len(list(root.glob("_tarn_iceberg/*/versions/*.json"))) == 5


def test_merge_schema_upsert_delete_update_and_optimize_read_as_tarn_does(tarn: TarnCli, warehouse: Warehouse) -> None:
    w = warehouse
    t = "main.shop.orders"
    tarn.run(*w.g(), "write", t, write_csv(w.tmp / "m.csv", [{**r, "extra": f"x{r['id']}"} for r in order_rows(30, 3, note="m")]),
             "--merge-schema", "--no-progress")
    tarn.run(*w.g(), "write", t, write_csv(w.tmp / "u.csv", order_rows(2, 3, note="u")), "--upsert-on", "id", "--no-progress")
    tarn.run(*w.g(), "delete", t, "--where", "id < 2")
    tarn.run(*w.g(), "update", t, "--set", "name = 'zz'", "--where", "id > 30")
    tarn.run(*w.g(), "optimize", t)
    history = tarn.run_json(*w.g(), "history", t)
    operations = {c["version"]: c["operation"] for c in history}
    table = catalog(w).load_table("shop.orders")
    snapshots = {s.snapshot_id: s for s in table.snapshots()}
    assert sorted(snapshots) == [v + 1 for v in sorted(operations)]
    columns = {**EVOLVED_COLUMNS, "extra": as_str}
    for v in sorted(operations):
        cols = ORDERS_COLUMNS if v < 3 else EVOLVED_COLUMNS if v < 5 else columns
        scan = table.scan(snapshot_id=v + 1)
        # Every rewrite (MERGE, DELETE, UPDATE, OPTIMIZE) writes files that declare plain
        # strings, as appends' do: pyiceberg 0.12's `to_arrow()` cannot combine `string`
        # files with `string_view` ones.
        got = arrow_rows(scan.to_arrow(), cols, f"pyiceberg snapshot {v + 1}")
        assert got == tarn_rows(tarn, w, "orders", cols, version=v), f"version {v} ({operations[v]})"
    con = attached_duckdb(w, "ext3")
    assert duckdb_canonical(con, "SELECT * FROM ice.shop.orders", columns) == tarn_rows(tarn, w, "orders", columns)
    kinds = {v: snapshots[v + 1].summary.operation.value for v in operations}
    assert kinds[max(operations)] == "replace", "optimize only rearranges data"
    assert kinds[7] == "delete" or kinds[7] == "overwrite", kinds
    # The optimized table is one manifest's worth of files for the current snapshot.
    assert len(list(table.scan().plan_files())) >= 1


def test_a_python_deltalake_table_with_every_type_registered_as_external(tarn: TarnCli, warehouse: Warehouse) -> None:
    import datetime as dt
    import decimal

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    w = warehouse
    schema = pa.schema([
        ("id", pa.int64()), ("b", pa.bool_()), ("i8", pa.int8()), ("i16", pa.int16()), ("i32", pa.int32()),
        ("f32", pa.float32()), ("f64", pa.float64()), ("dec", pa.decimal128(10, 2)), ("s", pa.string()),
        ("bin", pa.binary()), ("d", pa.date32()), ("ts", pa.timestamp("us", tz="UTC")), ("ntz", pa.timestamp("us")),
        ("l", pa.list_(pa.int64())), ("st", pa.struct([("a", pa.string()), ("n", pa.int32())])),
        ("m", pa.map_(pa.string(), pa.int64())), ("part", pa.string()),
    ])

    def rows(first: int) -> pa.Table:
        data = []
        for i in range(first, first + 6):
            data.append({
                "id": i, "b": i % 2 == 0, "i8": i - 3, "i16": i * 100, "i32": -i, "f32": i / 4, "f64": i / 3,
                "dec": decimal.Decimal(f"{i}.{i:02d}"), "s": f"s{i}" if i % 5 else None, "bin": bytes([i, 255]),
                "d": dt.date(2024, 1, 1 + i), "ts": dt.datetime(2024, 1, 1, i, 0, 1, 123456, tzinfo=dt.timezone.utc),
                "ntz": dt.datetime(2024, 2, 1, i, 30), "l": [i, i + 1], "st": {"a": f"a{i}", "n": i},
                "m": [(f"k{i}", i)], "part": ["p", "q"][i % 2],
            })
        return pa.Table.from_pylist(data, schema=schema)

    path = w.tmp / "lake" / "typed"
    write_deltalake(str(path), rows(0), partition_by=["part"])
    write_deltalake(str(path), rows(10), partition_by=["part"], mode="append")
    tarn.run(*w.g(), "register", "main.shop.typed", str(path))

    table = catalog(w).load_table("shop.typed")
    fields = {f.name: str(f.field_type) for f in table.schema().fields}
    assert fields["i8"] == "int" and fields["ts"] == "timestamptz" and fields["ntz"] == "timestamp"
    assert fields["dec"] == "decimal(10, 2)" and fields["bin"] == "binary" and fields["d"] == "date"
    assert fields["l"].startswith("list<") and fields["m"].startswith("map<") and fields["st"].startswith("struct<")
    for version, snapshot in ((0, 1), (1, 2)):
        want = DeltaTable(str(path), version=version).to_pyarrow_table().sort_by("id").to_pylist()
        got = table.scan(snapshot_id=snapshot).to_arrow().sort_by("id").to_pylist()
        assert len(got) == len(want) == 6 * (version + 1)
        for g, e in zip(got, want):
            e = {**e, "m": dict(e["m"]) if e["m"] is not None else None}
            g = {**g, "m": dict(g["m"]) if isinstance(g["m"], list) else g["m"]}
            assert g == e
    # Bounds prune: one file per partition and write, and only the files that may hold id 12.
    files = list(table.scan(row_filter="id = 12").plan_files())
    assert 1 <= len(files) < len(list(table.scan().plan_files()))
    assert table.scan(row_filter="id = 12").to_arrow().column("id").to_pylist() == [12]

    con = duckdb_with_iceberg(w.tmp / "ext2")
    con.execute(f"CREATE SECRET (TYPE iceberg, TOKEN '{w.token}')")
    con.execute(f"ATTACH 'main' AS ice (TYPE iceberg, ENDPOINT '{w.server.url}/iceberg')")
    got = con.execute("SELECT id, i8, dec::VARCHAR, s, d::VARCHAR, part, st.a, l[1] FROM ice.shop.typed ORDER BY id").fetchall()
    want = [(r["id"], r["i8"], str(r["dec"]), r["s"], str(r["d"]), r["part"], r["st"]["a"], r["l"][0])
            for r in DeltaTable(str(path)).to_pyarrow_table().sort_by("id").to_pylist()]
    assert got == want


def test_a_version_with_deletion_vectors_is_refused_with_the_reason_and_still_listed(tarn: TarnCli, warehouse: Warehouse) -> None:
    from pyiceberg.exceptions import RESTError

    w = warehouse
    root = next((w.wh / "main" / "shop").glob("events_*"))
    log = root / "_delta_log"
    last = max(int(p.stem) for p in log.glob("*.json"))
    add = next(json.loads(line)["add"] for line in (log / f"{1:020}.json").read_text().splitlines() if '"add"' in line)
    dv = {"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "offset": 1, "sizeInBytes": 36, "cardinality": 1}
    commit = [
        {"commitInfo": {"timestamp": 1_900_000_000_000, "operation": "DELETE"}},
        {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
                      "writerFeatures": ["deletionVectors"]}},
        {"remove": {"path": add["path"], "dataChange": True, "deletionTimestamp": 1_900_000_000_000,
                    "partitionValues": add["partitionValues"], "size": add["size"]}},
        {"add": {**add, "deletionVector": dv}},
    ]
    (log / f"{last + 1:020}.json").write_text("\n".join(json.dumps(a) for a in commit) + "\n")
    cat = catalog(w)
    assert ("shop", "events") in cat.list_tables("shop")
    with pytest.raises(RESTError) as refused:
        cat.load_table("shop.events")
    assert "deletion vector" in str(refused.value), str(refused.value)
    status, body = http(w.server, "GET", "/iceberg/v1/main/namespaces/shop/tables/events", w.token)
    assert status == 406 and body["error"]["type"] == "UnsupportedOperationException"
    assert f"version {last + 1}" in body["error"]["message"]


def test_two_servers_derive_the_same_snapshots_and_record_each_version_once(tarn: TarnCli, warehouse: Warehouse) -> None:
    from concurrent.futures import ThreadPoolExecutor

    w = warehouse
    other = TarnServer(tarn.binary, *w.g())
    try:
        path = "/iceberg/v1/main/namespaces/shop/tables/orders"
        for round in range(2):
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda s: http(s, "GET", path, w.token), [w.server, other] * 4))
            assert all(status == 200 for status, _ in answers), [a[0] for a in answers]
            metadata = [body["metadata"] for _, body in answers]
            first = metadata[0]
            for m in metadata[1:]:
                assert m["snapshots"] == first["snapshots"] and m["schemas"] == first["schemas"]
                assert m["current-snapshot-id"] == first["current-snapshot-id"]
            if round == 0:
                tarn.run(*w.g(), "write", "main.shop.orders", write_csv(w.tmp / "x.csv", order_rows(40, 2, note="x")), "--no-progress")
        root = next((w.wh / "main" / "shop").glob("orders_*"))
        records = sorted(p.name for p in root.glob("_tarn_iceberg/*/versions/*.json"))
        assert records == [f"{v:020}.json" for v in range(6)]
        assert first["current-snapshot-id"] == 6
        table = catalog(w, other).load_table("shop.orders")
        assert arrow_rows(table.scan().to_arrow(), EVOLVED_COLUMNS, "pyiceberg") == tarn_rows(tarn, w, "orders", EVOLVED_COLUMNS)
    finally:
        assert other.stop() == 0


def test_vacuums_leave_the_iceberg_files_alone(tarn: TarnCli, warehouse: Warehouse) -> None:
    from deltalake import DeltaTable

    w = warehouse
    table = catalog(w).load_table("shop.events")
    root = next((w.wh / "main" / "shop").glob("events_*"))
    before = sorted(p for p in root.glob("_tarn_iceberg/**/*") if p.is_file())
    assert before
    # A file no version names, outside hidden folders: a full vacuum deletes it, which
    # shows the vacuum below really looked at the whole folder.
    stray = root / "stray.parquet"
    stray.write_bytes(b"x")
    os.utime(stray, (1_000_000_000, 1_000_000_000))
    tarn.run(*w.g(), "vacuum", "main.shop.events", "--retain-hours", "0", "--force")
    DeltaTable(str(root)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)
    assert not stray.exists(), "the full vacuum ran"
    assert sorted(p for p in root.glob("_tarn_iceberg/**/*") if p.is_file()) == before
    assert arrow_rows(table.scan().to_arrow(), EVENTS_COLUMNS, "pyiceberg") == tarn_rows(tarn, w, "events", EVENTS_COLUMNS)


# --- column mapping ---------------------------------------------------------------------------


def typed_tarn_rows(tarn: TarnCli, w: Warehouse, table: str, schema: Any, version: int | None = None) -> list[dict[str, Any]]:
    """`tarn query` of a table's columns in `schema` (a reader's Arrow schema), at a version,
    each value in the form `rows_of` gives that reader's value of the column's type."""
    columns = ", ".join(f'"{name}"' for name in schema.names)
    args = ["query", f"SELECT {columns} FROM t", "--table", f"t=main.shop.{table}"]
    if version is not None:
        args += ["--version", str(version)]
    printed = json.loads(tarn.run(*w.g(), *args).stdout, parse_float=decimal.Decimal)
    rows = []
    for row in printed:
        assert list(row) == schema.names, f"tarn query columns {list(row)} != the reader's {schema.names}"
        rows.append({f.name: from_json(row[f.name], f.type) for f in schema})
    return sorted(rows, key=sort_key)


def attached_duckdb(w: Warehouse, scratch: str, server: TarnServer | None = None) -> Any:
    """DuckDB with the catalog `main` of `server` (the warehouse's by default) as `ice`."""
    con = duckdb_with_iceberg(w.tmp / scratch)
    con.execute(f"CREATE SECRET (TYPE iceberg, TOKEN '{w.token}')")
    con.execute(f"ATTACH 'main' AS ice (TYPE iceberg, ENDPOINT '{(server or w.server).url}/iceberg')")
    return con


def duckdb_canonical(con: Any, sql: str, columns: dict) -> list[dict[str, Any]]:
    """The rows of `sql` as `canonical_rows` gives them."""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return canonical_rows([dict(zip(names, r)) for r in cur.fetchall()], columns, source="duckdb")


def null_nested_structs_as_empty(rows: list[dict[str, Any]], schema: Any) -> list[dict[str, Any]]:
    """`rows` as pyiceberg 0.12 reads them: a null list or map of structs comes back empty
    (seen on Spark's column-mapped files; Tarn's metadata marks these columns optional)."""
    import pyarrow as pa

    def of_structs(t: Any) -> bool:
        return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type) or (
            pa.types.is_map(t) and pa.types.is_struct(t.item_type))

    names = {f.name for f in schema if of_structs(f.type)}
    return sorted(({k: ([] if k in names and v is None else v) for k, v in r.items()} for r in rows), key=sort_key)


def assert_reads_as_tarn_does(tarn: TarnCli, w: Warehouse, table: str, con: Any, versions: list[int]) -> None:
    """pyiceberg and DuckDB read every version of `table` (snapshot version + 1), and the
    current one, row for row and value for value as `tarn query` reads it.

    DuckDB 1.5.5 reads the columns of files that carry Parquet field ids (Spark, python
    deltalake under column mapping) by those ids, and these writers give none to list
    elements and map keys and values: DuckDB then reads such elements as null, or fails
    on maps ("'key' of MAP did not map to a value"), whatever the name mapping says. It
    is compared on the columns without lists or maps (docs/server.md says so)."""
    ice = catalog(w).load_table(f"shop.{table}")

    def pyiceberg_rows(got: Any, version: int | None) -> None:
        want = null_nested_structs_as_empty(typed_tarn_rows(tarn, w, table, got.schema, version), got.schema)
        assert sorted(rows_of(got), key=sort_key) == want, f"pyiceberg, version {version}"

    def duckdb_rows(at: str, version: int | None) -> None:
        got = con.execute(f'SELECT * FROM ice.shop."{table}"{at} LIMIT 0').fetch_arrow_table()
        kept = [f'"{f.name}"' for f in got.schema if "list<" not in str(f.type) and "map<" not in str(f.type)]
        got = con.execute(f'SELECT {", ".join(kept)} FROM ice.shop."{table}"{at}').fetch_arrow_table()
        assert sorted(rows_of(got), key=sort_key) == typed_tarn_rows(tarn, w, table, got.schema, version), (
            f"duckdb, version {version}")

    pyiceberg_rows(ice.scan().to_arrow(), None)
    duckdb_rows("", None)
    for v in versions:
        pyiceberg_rows(ice.scan(snapshot_id=v + 1).to_arrow(), v)
        duckdb_rows(f" AT (VERSION => {v + 1})", v)


COLUMN_MAPPED = {
    "spark_name": DATA / "spark-golden" / "table-with-columnmapping-mode-name" / "delta",
    "spark_id": DATA / "spark-golden" / "table-with-columnmapping-mode-id" / "delta",
    "databricks": DATA / "databricks" / "table_with_column_mapping",
}


@pytest.mark.parametrize("name", sorted(COLUMN_MAPPED))
def test_column_mapped_tables_of_spark_and_databricks_read_as_tarn_does(tarn: TarnCli, warehouse: Warehouse, name: str) -> None:
    w = warehouse
    path = w.tmp / "lake" / name
    shutil.copytree(COLUMN_MAPPED[name], path)
    tarn.run(*w.g(), "register", f"main.shop.{name}", str(path))
    lines = (path / "_delta_log" / f"{0:020}.json").read_text().splitlines()
    metadata = next(json.loads(line)["metaData"] for line in lines if '"metaData"' in line)
    delta_fields = json.loads(metadata["schemaString"])["fields"]

    table = catalog(w).load_table(f"shop.{name}")
    # Delta's column mapping ids are the Iceberg field ids; the name mapping maps the
    # physical names the files use to them.
    ids = {f.name: f.field_id for f in table.schema().fields}
    assert ids == {f["name"]: f["metadata"]["delta.columnMapping.id"] for f in delta_fields}
    mapping = {m["names"][0]: m["field-id"] for m in json.loads(table.properties["schema.name-mapping.default"])}
    assert mapping == {f["metadata"]["delta.columnMapping.physicalName"]: ids[f["name"]] for f in delta_fields}
    assert_reads_as_tarn_does(tarn, w, name, attached_duckdb(w, f"ext-{name}"), [0])

    from pyiceberg.expressions import EqualTo, GreaterThan

    if name == "databricks":
        # The partition values, which the log keys by physical name, are in the manifests.
        assert [f.name for f in table.spec().fields] == ["Company Very Short"]
        scan = table.scan(row_filter=EqualTo("Company Very Short", "BME"))
        assert len(list(scan.plan_files())) == 1 < len(list(table.scan().plan_files()))
        assert scan.to_arrow().column("Super Name").to_pylist() == ["Timothy Lamb"]
    else:
        # Bounds from the statistics, which the log keys by physical name, prune files.
        scan = table.scan(row_filter=GreaterThan("LongType", 3))
        assert len(list(scan.plan_files())) == 1 < len(list(table.scan().plan_files()))
        assert scan.to_arrow().column("LongType").to_pylist() == [4]


def test_a_column_mapped_deltalake_table_reads_at_every_version_as_tarn_does_across_a_rename(
    tarn: TarnCli, warehouse: Warehouse
) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    w = warehouse

    def rows(first: int, name: str = "name") -> pa.Table:
        return pa.Table.from_pylist(
            [{"id": i, name: f"n{i}" if i % 4 else None, "part": ["p", "q"][i % 2], "tags": [f"t{i}"] * (i % 3),
              "st": {"a": f"a{i}", "n": i}, "m": [(f"k{i}", i)]} for i in range(first, first + 6)],
            schema=pa.schema([("id", pa.int64()), (name, pa.string()), ("part", pa.string()),
                              ("tags", pa.list_(pa.string())), ("st", pa.struct([("a", pa.string()), ("n", pa.int32())])),
                              ("m", pa.map_(pa.string(), pa.int64()))]),
        )

    path = w.tmp / "lake" / "mapped"
    configuration = {"delta.columnMapping.mode": "name", "delta.minReaderVersion": "2", "delta.minWriterVersion": "5"}
    write_deltalake(str(path), rows(0), partition_by=["part"], configuration=configuration)
    write_deltalake(str(path), rows(10), partition_by=["part"], mode="append")
    # Version 2 renames `name` to `full name` as Spark's RENAME COLUMN does: the same id
    # and physical name under a new logical name, so the files written before still hold it.
    log = path / "_delta_log"
    metadata = next(json.loads(line)["metaData"] for line in (log / f"{0:020}.json").read_text().splitlines() if '"metaData"' in line)
    schema = json.loads(metadata["schemaString"])
    renamed = next(f for f in schema["fields"] if f["name"] == "name")
    renamed["name"] = "full name"
    metadata["schemaString"] = json.dumps(schema)
    commit = [{"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "RENAME COLUMN"}}, {"metaData": metadata}]
    (log / f"{2:020}.json").write_text("\n".join(json.dumps(a) for a in commit) + "\n")
    write_deltalake(str(path), rows(20, name="full name"), partition_by=["part"], mode="append")
    tarn.run(*w.g(), "register", "main.shop.mapped", str(path))

    table = catalog(w).load_table("shop.mapped")
    fields = {f.name: f.field_id for f in table.schema().fields}
    assert fields["full name"] == renamed["metadata"]["delta.columnMapping.id"]
    assert "name" not in fields
    assert sorted(table.scan().to_arrow().column("full name").to_pylist(), key=str) == sorted(
        [f"n{i}" if i % 4 else None for r in (0, 10, 20) for i in range(r, r + 6)], key=str
    ), "files written before the rename read under the new name"
    assert_reads_as_tarn_does(tarn, w, "mapped", attached_duckdb(w, "ext-mapped"), [0, 1, 2, 3])


def test_older_versions_read_as_tarn_does_after_overwrites_that_change_the_schema(
    tarn: TarnCli, warehouse: Warehouse
) -> None:
    """python deltalake's `schema_mode="overwrite"` replaces a table's columns: the files of
    older versions keep the old column names, which the name mapping must still map. When a
    name comes back as another field (`c`, a double, then a string), the snapshot of the
    older schema cannot be read through the one mapping: it is left out, and says so."""
    import pyarrow as pa
    from deltalake import write_deltalake

    w = warehouse
    path = w.tmp / "lake" / "reshaped"
    ids = lambda *v: pa.array(v, pa.int64())  # noqa: E731
    write_deltalake(str(path), pa.table({"id": ids(1, 2, 3), "b": pa.array(["x", "y", None])}))
    write_deltalake(str(path), pa.table({"id": ids(4, 5), "c": pa.array([1.5, None])}), mode="overwrite",
                    schema_mode="overwrite")
    write_deltalake(str(path), pa.table({"id": ids(6), "d": pa.array([True])}), mode="append", schema_mode="merge")
    write_deltalake(str(path), pa.table({"id": ids(7, 8), "c": pa.array(["s", None])}), mode="overwrite",
                    schema_mode="overwrite")
    tarn.run(*w.g(), "register", "main.shop.reshaped", str(path))

    table = catalog(w).load_table("shop.reshaped")
    assert [s.snapshot_id for s in table.snapshots()] == [1, 4], "versions 1 and 2 had `c` as a double"
    assert_reads_as_tarn_does(tarn, w, "reshaped", attached_duckdb(w, "ext-reshaped"), [0, 3])
    with pytest.raises(ValueError, match="Snapshot not found: 2"):
        table.scan(snapshot_id=2).to_arrow()


def test_a_column_mapped_table_with_deletion_vectors_is_still_refused(tarn: TarnCli, warehouse: Warehouse) -> None:
    from pyiceberg.exceptions import RESTError

    w = warehouse
    path = w.tmp / "lake" / "dvcm"
    shutil.copytree(DATA / "spark-golden" / "dv-with-columnmapping" / "delta", path)
    tarn.run(*w.g(), "register", "main.shop.dvcm", str(path))
    with pytest.raises(RESTError) as refused:
        catalog(w).load_table("shop.dvcm")
    assert "deletion vector" in str(refused.value), str(refused.value)
    status, body = http(w.server, "GET", "/iceberg/v1/main/namespaces/shop/tables/dvcm", w.token)
    assert status == 406 and body["error"]["type"] == "UnsupportedOperationException"


def test_a_server_with_iceberg_metadata_keeps_it_there_and_pyiceberg_and_duckdb_read_it(
    tarn: TarnCli, warehouse: Warehouse
) -> None:
    """`tarn serve --iceberg-metadata ROOT`: for tables whose storage the server may not
    write (here a file named `_tarn_iceberg` stands in the folder's way), the derived files
    go under ROOT and both clients read them."""
    w = warehouse
    root = next((w.wh / "main" / "shop").glob("orders_*"))
    (root / "_tarn_iceberg").write_bytes(b"in the way")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    status, body = w.server.request("GET", "/iceberg/v1/main/namespaces/shop/tables/orders", w.token)
    assert status == 500, body

    meta = w.tmp / "iceberg-meta"
    server = TarnServer(tarn.binary, *w.g(), extra=("--iceberg-metadata", str(meta)))
    try:
        table = catalog(w, server).load_table("shop.orders")
        assert table.metadata_location.startswith(f"file://{meta.resolve()}/"), table.metadata_location
        for v in range(5):
            columns = EVOLVED_COLUMNS if v >= 3 else ORDERS_COLUMNS
            got = arrow_rows(table.scan(snapshot_id=v + 1).to_arrow(), columns, f"pyiceberg snapshot {v + 1}")
            assert got == tarn_rows(tarn, w, "orders", columns, version=v), f"version {v}"
        con = attached_duckdb(w, "ext", server)
        got = duckdb_canonical(con, "SELECT * FROM ice.shop.orders", EVOLVED_COLUMNS)
        assert got == tarn_rows(tarn, w, "orders", EVOLVED_COLUMNS)
        assert len(list(meta.glob("*/versions/*.json"))) == 5
        assert list(meta.glob("*/manifests/*")) and list(meta.glob("*/metadata/*.metadata.json"))
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before, "the table's folder changed"
    finally:
        assert server.stop() == 0


def test_a_long_history_goes_gzipped_to_pyiceberg_and_reads_as_plain(tarn: TarnCli, warehouse: Warehouse) -> None:
    """An answer of 16 KiB or more goes gzipped to clients that accept gzip (pyiceberg's
    `requests` asks for it); pyiceberg and DuckDB read the table through it as python
    `deltalake` does, at the last version and an older one."""
    import gzip

    import pyarrow as pa
    import requests
    from deltalake import DeltaTable, write_deltalake

    w = warehouse
    path = w.tmp / "lake" / "long"
    for v in range(40):
        write_deltalake(str(path), pa.table({"id": pa.array([v], pa.int64()), "v": [f"v{v}"]}), mode="append")
    tarn.run(*w.g(), "register", "main.shop.long", str(path))
    url = f"{w.server.url}/iceberg/v1/main/namespaces/shop/tables/long"
    auth = {"Authorization": f"Bearer {w.token}"}

    plain = urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=30)
    assert plain.headers.get("Content-Encoding") is None
    plain_body = plain.read()
    assert len(plain_body) >= 16 * 1024, len(plain_body)
    raw = urllib.request.urlopen(urllib.request.Request(url, headers={**auth, "Accept-Encoding": "gzip"}), timeout=30)
    assert raw.headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(raw.read()) == plain_body
    answer = requests.get(url, headers=auth, timeout=30)
    assert "gzip" in answer.request.headers.get("Accept-Encoding", ""), answer.request.headers
    assert answer.headers.get("Content-Encoding") == "gzip"
    assert answer.json() == json.loads(plain_body)

    table = catalog(w).load_table("shop.long")
    assert len(table.snapshots()) == 40
    for version in (39, 7):
        want = DeltaTable(str(path), version=version).to_pyarrow_table().sort_by("id").to_pylist()
        got = table.scan(snapshot_id=version + 1).to_arrow().sort_by("id").to_pylist()
        assert got == want, f"version {version}"
    con = attached_duckdb(w, "ext_long")
    assert con.execute("SELECT count(*), max(id) FROM ice.shop.long").fetchall() == [(40, 39)]
    assert con.execute("SELECT count(*) FROM ice.shop.long AT (VERSION => 8)").fetchall() == [(8,)]
