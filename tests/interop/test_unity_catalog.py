"""Tarn's catalog served over the Unity Catalog REST API, read by real clients: DuckDB 1.5.5
with its unity_catalog extension, and the official `unitycatalog-client` SDK. Also two
`tarn serve` processes sharing one PostgreSQL catalog."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from input_files import write_csv
from tarn_cli import TarnCli
from tarn_server import TarnServer

SCHEMA = "id bigint not null, customer string, amount decimal(12,2), created_at timestamp"


def rows(first: int, n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "customer": f"c{i % 3}", "amount": f"{i}.50", "created_at": "2026-01-0%dT10:00:00Z" % (1 + i % 9)}
        for i in range(first, first + n)
    ]


@pytest.fixture
def warehouse(tarn: TarnCli, tmp_path: Path) -> Iterator[tuple[Path, str, TarnServer]]:
    """A warehouse with main.default.orders (two commits) and a served catalog; yields the
    warehouse, a read token, and the server."""
    wh = tmp_path / "wh"
    g = ("--warehouse", str(wh))
    tarn.run(*g, "catalog", "create", "main")
    tarn.run(*g, "schema", "create", "main.default")
    tarn.run(*g, "create", "main.default.orders", "--schema", SCHEMA)
    csv = write_csv(tmp_path / "a.csv", rows(1, 10))
    tarn.run(*g, "write", "main.default.orders", str(csv), "--no-progress")
    token = tarn.run_json(*g, "token", "create", "duck", "--scope", "read")["token"]
    server = TarnServer(tarn.binary, *g)
    yield wh, token, server
    assert server.stop() == 0, "graceful shutdown on SIGTERM"


def duckdb_with_uc(scratch: Path) -> Any:
    import duckdb

    con = duckdb.connect(config={"extension_directory": str(scratch), "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    for name in ("httpfs", "delta", "unity_catalog"):
        module = importlib.import_module(f"duckdb_extension_{name}")
        path = Path(module.__path__[0]) / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
        con.execute(f"INSTALL '{path}'")
        con.execute(f"LOAD {name}")
    return con


def test_duckdb_attaches_lists_and_reads_tables_and_sees_new_versions(tarn: TarnCli, warehouse, tmp_path: Path) -> None:
    wh, token, server = warehouse
    con = duckdb_with_uc(tmp_path / "ext")
    # DuckDB 1.5.5's unity_catalog extension races when several threads load the attached
    # catalog's schemas: the first SHOW ALL TABLES is then empty about one time in five,
    # with the same server answers. One thread makes it deterministic.
    con.execute("SET threads=1")
    con.execute(f"CREATE SECRET (TYPE UC, TOKEN '{token}', ENDPOINT '{server.url}', AWS_REGION 'us-east-1')")
    con.execute("ATTACH 'main' AS uc (TYPE UC_CATALOG)")
    tables = con.execute("SHOW ALL TABLES").fetchall()
    assert any(t[0] == "uc" and t[1] == "default" and t[2] == "orders" for t in tables), tables
    assert con.execute("SELECT count(*), sum(amount)::VARCHAR FROM uc.default.orders").fetchall() == [(10, "60.00")]

    csv = write_csv(tmp_path / "b.csv", rows(11, 5))
    tarn.run("--warehouse", str(wh), "write", "main.default.orders", str(csv), "--no-progress")
    assert con.execute("SELECT count(*) FROM uc.default.orders").fetchall() == [(15,)]


def test_duckdb_with_a_bad_token_sees_no_tables(warehouse, tmp_path: Path) -> None:
    _, _, server = warehouse
    status, body = server.request("GET", "/api/2.1/unity-catalog/schemas?catalog_name=main", token="tarn_forged")
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"


def test_official_sdk_lists_catalogs_schemas_tables_and_gets_a_table(warehouse) -> None:
    from unitycatalog.client import ApiClient, CatalogsApi, Configuration, SchemasApi, TablesApi

    _, token, server = warehouse

    async def run() -> None:
        config = Configuration(host=f"{server.url}/api/2.1/unity-catalog")
        async with ApiClient(config, header_name="Authorization", header_value=f"Bearer {token}") as client:
            catalogs = await CatalogsApi(client).list_catalogs()
            assert [c.name for c in catalogs.catalogs] == ["main"]
            schemas = await SchemasApi(client).list_schemas(catalog_name="main")
            assert [s.full_name for s in schemas.schemas] == ["main.default"]
            tables = await TablesApi(client).list_tables(catalog_name="main", schema_name="default")
            assert [t.name for t in tables.tables] == ["orders"]
            table = await TablesApi(client).get_table(full_name="main.default.orders")
            assert table.table_type.value == "MANAGED" and table.data_source_format.value == "DELTA"
            assert [(c.name, c.type_text, c.position) for c in table.columns] == [
                ("id", "bigint", 0), ("customer", "string", 1), ("amount", "decimal(12,2)", 2), ("created_at", "timestamp", 3)]
            assert table.storage_location.startswith("file:///")

    asyncio.run(run())


def postgres_url() -> str:
    return os.environ.get("TARN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


def test_two_servers_share_one_postgres_catalog(tarn: TarnCli, tmp_path: Path) -> None:
    base = postgres_url()
    if base == "skip":
        pytest.skip("TARN_TEST_POSTGRES=skip")
    db = f"tarn_interop_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", base, "-q", "-c", f"CREATE DATABASE {db}"], check=True)
    url = base.rsplit("/", 1)[0] + "/" + db
    try:
        wh = tmp_path / "wh"
        g = ("--warehouse", str(wh), "--catalog", url)
        admin = tarn.run_json(*g, "token", "create", "admin", "--scope", "admin")["token"]
        one, two = TarnServer(tarn.binary, *g), TarnServer(tarn.binary, *g)
        try:
            status, _ = one.request("POST", "/api/2.1/unity-catalog/catalogs", admin, {"name": "main"})
            assert status == 200
            status, _ = one.request("POST", "/api/2.1/unity-catalog/schemas", admin, {"name": "shop", "catalog_name": "main"})
            assert status == 200
            status, created = one.request("POST", "/api/2.1/unity-catalog/tables", admin, {
                "name": "orders", "catalog_name": "main", "schema_name": "shop", "table_type": "MANAGED",
                "data_source_format": "DELTA", "columns": [{"name": "id", "type_text": "bigint", "nullable": False}]})
            assert status == 200, created
            status, served = two.request("GET", "/api/2.1/unity-catalog/tables/main.shop.orders", admin)
            assert status == 200, served
            assert served["table_id"] == created["table_id"]
            assert served["columns"][0]["type_text"] == "bigint"
            revoked_everywhere_at_once(tarn, g, one, two)
        finally:
            assert one.stop() == 0
            assert two.stop() == 0
    finally:
        subprocess.run(["psql", base, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True)


def revoked_everywhere_at_once(tarn: TarnCli, g: tuple[str, ...], *servers: TarnServer) -> None:
    """On PostgreSQL a server remembers the tokens it found (for up to 10 s) until the
    catalog tells it that tokens changed: a token revoked with the CLI is refused by every
    replica at once (well within a second), not after 10 s."""
    reader = tarn.run_json(*g, "token", "create", "reader", "--scope", "read")["token"]
    path = "/api/2.1/unity-catalog/tables/main.shop.orders"
    for server in servers:
        for _ in range(3):
            status, body = server.request("GET", path, reader)
            assert status == 200, body
    tarn.run(*g, "token", "revoke", "reader")
    revoked = time.monotonic()
    for server in servers:
        while (status := server.request("GET", path, reader)[0]) == 200 and time.monotonic() - revoked < 2:
            time.sleep(0.01)
        assert status == 401, f"still served {time.monotonic() - revoked:.2f} s after the revoke"


def test_serve_refuses_no_auth_beyond_loopback(tarn: TarnCli, tmp_path: Path) -> None:
    err = tarn.fails("--warehouse", str(tmp_path / "wh"), "serve", "--bind", "0.0.0.0:0", "--no-auth")
    assert "loopback" in err


def test_a_token_revoked_while_the_server_runs_is_refused_at_once(tarn: TarnCli, warehouse) -> None:
    """The server reads tokens from the catalog on every request (no cache): a token created
    or revoked with the CLI while it runs counts from the next request."""
    wh, token, server = warehouse
    g = ("--warehouse", str(wh))
    status, body = server.request("GET", "/api/2.1/unity-catalog/tables/main.default.orders", token)
    assert status == 200 and body["name"] == "orders", body
    late = tarn.run_json(*g, "token", "create", "late", "--scope", "read")["token"]
    status, _ = server.request("GET", "/api/2.1/unity-catalog/tables/main.default.orders", late)
    assert status == 200
    tarn.run(*g, "token", "revoke", "duck")
    status, body = server.request("GET", "/api/2.1/unity-catalog/tables/main.default.orders", token)
    assert status == 401, body
    status, body = server.request("GET", "/api/2.1/unity-catalog/tables/main.default.unknown", late)
    assert status == 404, body
