#!/usr/bin/env python3
"""Tarn's benchmark harness: each workload runs Tarn and its peers on the same data, in the
same run, and prints the median of several timed runs (after one warm-up run each), the
spread (min-max), and the ratio Tarn/peer.

Workloads (--only NAME to run one):
  ingest   N rows (int64 id, float64 value, a string of 10 distinct values, a UTC
           timestamp) from Parquet and from CSV into a new table: `tarn write --create`
           vs python deltalake (`write_deltalake` after reading the file with pyarrow) and
           DuckDB `COPY ... TO ... (FORMAT parquet)` (no transaction log: the floor).
  memory   peak RSS of `tarn write` from CSV at the ingest size and at 10 times it (the
           memory must stay bounded as the input grows).
  commits  single-row appends one after another, and 4 writers appending at once:
           `tarn write` (one process per commit, as a script would run it) vs python
           deltalake (in one process). Commits/s; no commit may be lost. Each system
           creates its table with its own defaults (Tarn checkpoints every 10 commits,
           python deltalake every 100); commits/s counts the commits that landed.
  history  a table with many commits (checkpoints at the default interval): open at the
           latest version, at the middle version, and as of a time in the middle:
           `tarn describe` vs python deltalake `DeltaTable(...)` / `load_as_version(..)`.
  query    a grouped aggregate over the ingest table, and the monthly-revenue dashboard
           (orders joined with users, as in `tarn quickstart`): `tarn query` vs DuckDB
           `delta_scan` and polars `scan_delta`.
  import   N rows from the local PostgreSQL into a new table: `tarn import` vs DuckDB's
           postgres extension copying the same table to Parquet (no transaction log). The
           table is vacuumed first; the two systems' runs are taken in turn.
  server   get-table and list-tables against `tarn serve` (SQLite, then PostgreSQL catalog)
           with 32 connections from `wrk`: requests/s and latency (skipped without wrk).
  iceberg  the Iceberg REST catalog of `tarn serve` on a table of 1,000 versions and
           10,000 files (python deltalake appends of 10 files each): the first loadTable
           (every version derived), the first loadTable after one new version (timed
           against the same on a table of 10 versions, the ratio: the work follows the
           change, not the table), then the same load again: the answer lists every
           snapshot, so the difference is what deriving the new version cost, repeated loadTables with 32 connections from `wrk` (without wrk, a
           Python client loop on 4 keep-alive connections, which the note says), with
           every snapshot, with `snapshots=refs`, and with every snapshot gzipped (as
           pyiceberg asks for it); then a scan of the ingest-sized
           table through Iceberg vs the same engine reading the Delta table: pyiceberg
           `scan().to_arrow()` vs python deltalake `to_pyarrow_table()`, DuckDB's iceberg
           extension vs its `delta_scan`.
  cdc      change data capture from the local PostgreSQL (wal_level = logical, else
           skipped): `tarn import --cdc` catching up on 300,000 changes (70% updates, 20%
           inserts, 10% deletes) over a 1,000,000-row table (changes/s, peak RSS), one
           source transaction that updates every row (peak RSS: it is spilled), then
           `--follow` under a steady 5,000 changes/s for 30 s: the lag from each write to
           the slot's confirmation of it (which comes only after the Delta commit).

Usage (from the repository root, with the interop venv that tests/run.sh builds):
  cargo build --release
  .venv/bin/python bench/run.py                 # 1,000,000 rows, 5 runs
  .venv/bin/python bench/run.py --quick         # 100,000 rows, 3 runs
  .venv/bin/python bench/run.py --tiny          # 1,000 rows, 1 run (what CI checks)

Environment: TARN_BIN (default target/release/tarn, else target/debug/tarn under
$CARGO_TARGET_DIR), TARN_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable
from urllib.parse import urlparse

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tarn_binary() -> tuple[pathlib.Path, str]:
    if os.environ.get("TARN_BIN"):
        return pathlib.Path(os.environ["TARN_BIN"]), "TARN_BIN"
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "tarn"
        if candidate.is_file():
            return candidate, profile
    sys.exit("bench: no tarn binary: run `cargo build --release` (or set TARN_BIN)")


def psql(url: str, sql: str) -> None:
    # On stdin: a script of many transactions is longer than one argument may be (128 KiB).
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-f", "-"], input=sql.encode(), check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PGOPTIONS": "--client-min-messages=warning"})


def timed(runs: int, fn: Callable[[], None]) -> list[float]:
    fn()  # warm-up, not counted
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def timed_in_turn(runs: int, first: Callable[[], None], second: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Like `timed` for two systems, their runs taken in turn (a warm-up each, then first,
    second, first, ...), so that a machine that speeds up or slows down during the workload
    (another process, the source database's background work) weighs on both alike."""
    first()
    second()
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, times in ((first, out[0]), (second, out[1])):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return out


def summary(times: list[float]) -> str:
    if statistics.median(times) < 0.1:  # milliseconds, to two decimals
        ms = [t * 1000 for t in times]
        return f"{statistics.median(ms):7.2f} ms ({min(ms):.2f}-{max(ms):.2f})"
    return f"{statistics.median(times):7.3f} s  ({min(times):.3f}-{max(times):.3f})"


def duckdb_with_postgres(scratch: pathlib.Path):
    import duckdb

    module = importlib.import_module("duckdb_extension_postgres")
    ext = pathlib.Path(module.__path__[0]) / "extensions" / f"v{duckdb.__version__}" / "postgres.duckdb_extension"
    con = duckdb.connect(config={"extension_directory": str(scratch), "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.execute(f"INSTALL '{ext}'")
    con.execute("LOAD postgres")
    return con


def workload_import(tarn: pathlib.Path, rows: int, runs: int, work: pathlib.Path) -> list[dict]:
    url = os.environ.get("TARN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    table = f"tarn_bench_import_{rows}"
    # Fixed seed: the same rows every time.
    psql(url, f"""
        DROP TABLE IF EXISTS {table};
        SELECT setseed(0.42);
        CREATE TABLE {table} AS
          SELECT g::bigint AS id, round((random() * 1000)::numeric, 2)::numeric(12,2) AS amount,
                 'customer_' || (g % 1000) AS customer, (g % 7 = 0) AS flag,
                 timestamptz '2026-01-01' + g * interval '1 second' AS created_at
          FROM generate_series(1, {rows}) g;
        ANALYZE {table};""")
    # As a table that has been in production a while: hint bits set and the visibility map
    # up to date, so no run pays for the first reads of freshly written rows.
    psql(url, f"VACUUM {table}")
    results = []
    peak_kib = [0]

    def tarn_run() -> None:
        target = work / "tarn_import"
        shutil.rmtree(target, ignore_errors=True)
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(tarn), "--format", "json", "import", url,
                               "--source", table, "--into", str(target), "--mode", "overwrite", "--no-progress"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"tarn import failed: {proc.stderr}")
        assert json.loads(proc.stdout)["rows_read"] == rows
        peak_kib[0] = max(peak_kib[0], int(proc.stderr.strip().splitlines()[-1]))

    con = duckdb_with_postgres(work / "duckdb_ext")
    parsed = urlparse(url)
    con.execute(f"ATTACH 'host={parsed.hostname} port={parsed.port or 5432} user={parsed.username} "
                f"dbname={parsed.path.lstrip('/')}' AS pg (TYPE postgres, READ_ONLY)")

    def duckdb_run() -> None:
        out = work / "duckdb.parquet"
        con.execute(f"COPY (SELECT * FROM pg.public.{table}) TO '{out}' (FORMAT parquet)")

    tarn_times, duck_times = timed_in_turn(runs, tarn_run, duckdb_run)
    psql(url, f"DROP TABLE {table}")
    results.append({"workload": f"import {rows:,} rows from PostgreSQL", "system": "tarn import",
                    "times": tarn_times, "note": f"peak RSS {peak_kib[0] / 1024:.0f} MiB"})
    results.append({"workload": f"import {rows:,} rows from PostgreSQL", "system": "duckdb postgres -> parquet",
                    "times": duck_times, "note": "no transaction log"})
    return results


CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def tarn_cmd(tarn: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(tarn), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tarn {' '.join(args)} failed: {proc.stderr}")
    return proc


def _ingest_rows(rows: int, seed: int = 42, first_id: int = 0):
    """The ingest workload's rows: int64 id, float64 value, one of 10 strings, a UTC time."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    base = np.datetime64("2026-01-01T00:00:00", "us")
    return pa.table({
        "id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        "value": pa.array(rng.random(rows) * 1000),
        "category": pa.array(np.array(CATEGORIES)[rng.integers(0, 10, rows)]),
        "ts": pa.array(base + rng.integers(0, 365 * 86400 * 10**6, rows).astype("timedelta64[us]"),
                       type=pa.timestamp("us", tz="UTC")),
    })


def make_ingest_files(rows: int, work: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = _ingest_rows(rows)
    parquet, csv = work / "ingest.parquet", work / "ingest.csv"
    pq.write_table(table, parquet)
    pacsv.write_csv(table, csv)
    return parquet, csv


def workload_ingest(tarn: pathlib.Path, rows: int, runs: int, work: pathlib.Path) -> list[dict]:
    import duckdb
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    parquet, csv = make_ingest_files(rows, work)
    name = f"ingest {rows:,} rows"
    results = []
    for label, path in (("parquet", parquet), ("csv", csv)):
        peak = [0]

        def tarn_run() -> None:
            target = work / "tarn_ingest"
            shutil.rmtree(target, ignore_errors=True)
            proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(tarn), "write", str(target), str(path),
                                   "--create", "--no-progress"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"tarn write failed: {proc.stderr}")
            peak[0] = max(peak[0], int(proc.stderr.strip().splitlines()[-1]))

        def deltalake_run() -> None:
            target = work / "py_ingest"
            shutil.rmtree(target, ignore_errors=True)
            data = pq.read_table(path) if label == "parquet" else pacsv.read_csv(path)
            write_deltalake(str(target), data)

        con = duckdb.connect()

        def duckdb_run() -> None:
            reader = "read_parquet" if label == "parquet" else "read_csv"
            con.execute(f"COPY (SELECT * FROM {reader}('{path}')) TO '{work / 'duck.parquet'}' (FORMAT parquet)")

        results.append({"workload": f"{name} from {label}", "system": "tarn write",
                        "times": timed(runs, tarn_run), "note": f"peak RSS {peak[0] / 1024:.0f} MiB"})
        results.append({"workload": f"{name} from {label}", "system": "python deltalake",
                        "times": timed(runs, deltalake_run), "note": ""})
        results.append({"workload": f"{name} from {label}", "system": "duckdb copy to parquet",
                        "times": timed(runs, duckdb_run), "note": "no transaction log"})
    # Leave a Tarn table for the query workload.
    tarn_cmd(tarn, "write", str(work / "query_table"), str(parquet), "--create", "--no-progress")
    return results


def workload_memory(tarn: pathlib.Path, rows: int, work: pathlib.Path) -> list[dict]:
    """Peak RSS of `tarn write --create` from CSV at `rows` and at 10x `rows`: it must stay
    bounded (well under 1 GiB) however large the input grows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    results = []
    for n in (rows, rows * 10):
        csv = work / f"memory_{n}.csv"
        chunk = min(n, 1_000_000)
        with pa.OSFile(str(csv), "wb") as sink:
            writer = None
            for start in range(0, n, chunk):
                part = _ingest_rows(min(chunk, n - start), seed=start, first_id=start)
                if writer is None:
                    writer = pacsv.CSVWriter(sink, part.schema)
                writer.write_table(part)
            writer.close()
        target = work / "memory_table"
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(tarn), "write", str(target), str(csv),
                               "--create", "--no-progress"], capture_output=True, text=True)
        secs = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"tarn write failed: {proc.stderr}")
        peak = int(proc.stderr.strip().splitlines()[-1]) / 1024
        results.append({"workload": f"memory: ingest {n:,} rows of CSV ({csv.stat().st_size / 2**30:.2f} GiB)",
                        "system": "tarn write", "times": [secs], "note": f"peak RSS {peak:.0f} MiB"})
        csv.unlink()
        shutil.rmtree(target, ignore_errors=True)
    return results


def workload_commits(tarn: pathlib.Path, commits: int, work: pathlib.Path) -> list[dict]:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    row = work / "row.csv"
    row.write_text("id,value\n1,1.5\n")
    results = []
    # Sequential.
    target = work / "tarn_commits"
    tarn_cmd(tarn, "create", str(target), "--schema", "id bigint, value double")
    start = time.perf_counter()
    for _ in range(commits):
        tarn_cmd(tarn, "write", str(target), str(row), "--no-progress")
    tarn_secs = time.perf_counter() - start
    py = work / "py_commits"
    data = pa.table({"id": [1], "value": [1.5]})
    write_deltalake(str(py), data)
    start = time.perf_counter()
    for _ in range(commits):
        write_deltalake(str(py), data, mode="append")
    py_secs = time.perf_counter() - start
    name = f"{commits} single-row appends in a row"
    results.append({"workload": name, "system": "tarn write", "times": [tarn_secs],
                    "note": f"{commits / tarn_secs:.0f} commits/s"})
    results.append({"workload": name, "system": "python deltalake", "times": [py_secs],
                    "note": f"{commits / py_secs:.0f} commits/s"})
    # Four writers at once.
    each = max(1, commits // 4)
    target = work / "tarn_concurrent"
    tarn_cmd(tarn, "create", str(target), "--schema", "id bigint, value double")
    script = f"for i in $(seq {each}); do {tarn} write {target} {row} --no-progress >/dev/null || exit 1; done"
    start = time.perf_counter()
    procs = [subprocess.Popen(["bash", "-c", script]) for _ in range(4)]
    # Every writer waited for (a bare all() would stop at the first failure).
    assert all([p.wait() == 0 for p in procs]), "a tarn writer failed"
    tarn_conc = time.perf_counter() - start
    count = json.loads(tarn_cmd(tarn, "--format", "json", "query", "SELECT COUNT(*) AS n FROM t",
                                "--table", f"t={target}").stdout)[0]["n"]
    assert count == 4 * each, f"lost commits: {count} rows, expected {4 * each}"
    py_conc_dir = work / "py_concurrent"
    write_deltalake(str(py_conc_dir), data)
    code = (f"import pyarrow as pa\nfrom deltalake import write_deltalake\n"
            f"d = pa.table({{'id': [1], 'value': [1.5]}})\n"
            f"for _ in range({each}): write_deltalake('{py_conc_dir}', d, mode='append')\n")
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL) for _ in range(4)]
    # Every writer waited for: one that failed must not leave the others running (they
    # would still be writing while the time is taken and the folder removed).
    py_ok = all([p.wait() == 0 for p in procs])
    py_conc = time.perf_counter() - start
    try:
        py_rows = DeltaTable(str(py_conc_dir)).to_pyarrow_table().num_rows - 1
    except Exception as e:  # the peer's concurrent writers can leave a log it cannot read
        print(f"note: python deltalake cannot read its own concurrently written table: {e}")
        py_rows = 0
    name = f"4 writers x {each} appends at once"
    results.append({"workload": name, "system": "tarn write", "times": [tarn_conc],
                    "note": f"{count / tarn_conc:.0f} commits/s, {count} of {4 * each} rows"})
    results.append({"workload": name, "system": "python deltalake", "times": [py_conc],
                    "note": f"{py_rows / py_conc:.0f} commits/s, {py_rows} of {4 * each} rows"
                            + ("" if py_ok else ", some writers failed")})
    return results


def workload_history(tarn: pathlib.Path, commits: int, runs: int, work: pathlib.Path) -> list[dict]:
    import datetime as dt

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    path = work / "history"
    data = pa.table({"id": [1], "value": [1.5]})
    write_deltalake(str(path), data)
    for _ in range(commits - 1):
        write_deltalake(str(path), data, mode="append")
    DeltaTable(str(path)).create_checkpoint()
    middle = commits // 2
    history = json.loads(tarn_cmd(tarn, "--format", "json", "history", str(path), "--limit", str(commits)).stdout)
    at = next(c["timestamp"] for c in history if c["version"] == middle)
    at_dt = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    results = []
    for label, tarn_args, py in (
        ("latest", [], lambda: DeltaTable(str(path))),
        (f"version {middle}", ["--version", str(middle)], lambda: DeltaTable(str(path), version=middle)),
        ("as of a middle time", ["--as-of", at], lambda: _load_at(DeltaTable(str(path)), at_dt)),
    ):
        name = f"open a {commits}-commit table at {label}"
        results.append({"workload": name, "system": "tarn describe",
                        "times": timed(runs, lambda: tarn_cmd(tarn, "describe", str(path), *tarn_args)),
                        "note": "includes process start"})
        results.append({"workload": name, "system": "python deltalake", "times": timed(runs, py), "note": ""})
    return results


def _load_at(table, when) -> None:
    table.load_as_version(when)


def workload_query(tarn: pathlib.Path, runs: int, work: pathlib.Path, users: int, orders: int) -> list[dict]:
    import duckdb
    import polars as pl

    table = work / "query_table"
    if not table.is_dir():
        parquet, _ = make_ingest_files(100_000, work)
        tarn_cmd(tarn, "write", str(table), str(parquet), "--create", "--no-progress")
    sql = "SELECT category, COUNT(*) AS n, SUM(value) AS total, MAX(ts) AS latest FROM t GROUP BY category ORDER BY category"
    con = duckdb.connect()
    import importlib as _il
    ext = pathlib.Path(_il.import_module("duckdb_extension_delta").__path__[0]) / "extensions" / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    con.execute(f"SET extension_directory='{work / 'duck_ext'}'")
    con.execute(f"INSTALL '{ext}'")
    con.execute("LOAD delta")
    name = "grouped aggregate over the ingest table"
    results = [
        {"workload": name, "system": "tarn query", "note": "includes process start",
         "times": timed(runs, lambda: tarn_cmd(tarn, "query", sql, "--table", f"t={table}", "--format", "csv"))},
        {"workload": name, "system": "duckdb delta_scan", "note": "",
         "times": timed(runs, lambda: con.execute(sql.replace("FROM t", f"FROM delta_scan('{table}')")).fetchall())},
        {"workload": name, "system": "polars scan_delta", "note": "",
         "times": timed(runs, lambda: pl.scan_delta(str(table)).group_by("category").agg(
             pl.len(), pl.col("value").sum(), pl.col("ts").max()).sort("category").collect())},
    ]
    results += workload_dashboard(tarn, con, runs, work, users=users, orders=orders)
    return results


DASHBOARD_SQL = ("SELECT DATE_TRUNC('month', o.created_at) AS month, u.country, COUNT(*) AS orders, "
                 "AVG(o.amount) AS avg_amount, SUM(o.amount) AS revenue "
                 "FROM orders o JOIN users u ON u.id = o.user_id GROUP BY 1, 2 ORDER BY 1, 2")


def workload_dashboard(tarn: pathlib.Path, con, runs: int, work: pathlib.Path, users: int, orders: int) -> list[dict]:
    """The monthly-revenue dashboard of `tarn quickstart`, over generated users and orders."""
    import numpy as np
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    countries = np.array(["DE", "FR", "US", "JP"])
    users_file, orders_file = work / "users.parquet", work / "orders.parquet"
    pq.write_table(pa.table({"id": np.arange(users, dtype=np.int64),
                             "country": countries[rng.integers(0, 4, users)]}), users_file)
    base = np.datetime64("2026-01-01T00:00:00", "us")
    pq.write_table(pa.table({
        "id": np.arange(orders, dtype=np.int64),
        "user_id": rng.integers(0, users, orders),
        "amount": pa.array(rng.integers(100, 100_000, orders), pa.int64())
                    .cast(pa.decimal128(38, 2)).cast(pa.decimal128(12, 2)),
        "created_at": pa.array(base + rng.integers(0, 365 * 86400 * 10**6, orders).astype("timedelta64[us]"),
                               type=pa.timestamp("us", tz="UTC")),
    }), orders_file)
    u, o = work / "dash_users", work / "dash_orders"
    tarn_cmd(tarn, "write", str(u), str(users_file), "--create", "--no-progress")
    tarn_cmd(tarn, "write", str(o), str(orders_file), "--create", "--no-progress")
    duck_sql = DASHBOARD_SQL.replace("FROM orders o", f"FROM delta_scan('{o}') o").replace(
        "JOIN users u", f"JOIN delta_scan('{u}') u")

    def polars_run() -> None:
        (pl.scan_delta(str(o)).join(pl.scan_delta(str(u)), left_on="user_id", right_on="id")
         .group_by(pl.col("created_at").dt.truncate("1mo").alias("month"), "country")
         .agg(pl.len().alias("orders"), pl.col("amount").mean().alias("avg_amount"),
              pl.col("amount").sum().alias("revenue"))
         .sort("month", "country").collect())

    name = f"dashboard: {orders:,} orders x {users:,} users"
    return [
        {"workload": name, "system": "tarn query", "note": "includes process start",
         "times": timed(runs, lambda: tarn_cmd(tarn, "query", DASHBOARD_SQL, "--table", f"orders={o}",
                                               "--table", f"users={u}", "--format", "csv"))},
        {"workload": name, "system": "duckdb delta_scan", "note": "",
         "times": timed(runs, lambda: con.execute(duck_sql).fetchall())},
        {"workload": name, "system": "polars scan_delta", "note": "", "times": timed(runs, polars_run)},
    ]


def workload_server(tarn: pathlib.Path, seconds: int, work: pathlib.Path) -> list[dict]:
    if not shutil.which("wrk"):
        print("note: the server workload needs wrk (apt-get install wrk): skipped")
        return []
    results = []
    results += _server_run(tarn, seconds, work / "server_sqlite", None, "SQLite catalog")
    url = os.environ.get("TARN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    if url != "skip" and shutil.which("psql"):
        database = "tarn_bench_catalog"
        psql(url, f"DROP DATABASE IF EXISTS {database}")
        psql(url, f"CREATE DATABASE {database}")
        parsed = urlparse(url)
        catalog = parsed._replace(path=f"/{database}").geturl()
        try:
            results += _server_run(tarn, seconds, work / "server_pg", catalog, "PostgreSQL catalog")
        finally:
            psql(url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    else:
        print("note: no PostgreSQL (TARN_TEST_POSTGRES=skip or no psql): the PostgreSQL catalog run is skipped")
    return results


def start_server(tarn: pathlib.Path, g: list[str]) -> tuple[subprocess.Popen, str]:
    """`tarn serve` on a free port, once it answers /health: the process and its URL."""
    import urllib.request

    server = subprocess.Popen([str(tarn), *g, "serve", "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    url = "http://" + server.stdout.readline().split("http://", 1)[1].split()[0]
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/health").read()
            break
        except OSError:
            time.sleep(0.05)
    return server, url


def _server_run(tarn: pathlib.Path, seconds: int, wh: pathlib.Path, catalog: str | None,
                label: str) -> list[dict]:
    """get-table and list-tables (20 tables) against one `tarn serve`, 32 connections."""
    import re

    g = ["--warehouse", str(wh)] + (["--catalog", catalog] if catalog else [])
    tarn_cmd(tarn, *g, "catalog", "create", "main")
    tarn_cmd(tarn, *g, "schema", "create", "main.shop")
    for i in range(20):
        tarn_cmd(tarn, *g, "create", f"main.shop.t{i}", "--schema", "id bigint, name string, amount decimal(12,2)")
    token = json.loads(tarn_cmd(tarn, *g, "--format", "json", "token", "create", "bench", "--scope", "read").stdout)["token"]
    server, url = start_server(tarn, g)
    try:
        results = []
        for name, path in (("get-table", "/api/2.1/unity-catalog/tables/main.shop.t7"),
                           ("list-tables", "/api/2.1/unity-catalog/tables?catalog_name=main&schema_name=shop")):
            out = subprocess.run(["wrk", "-t", "2", "-c", "32", "-d", f"{seconds}s", "--latency",
                                  "-H", f"Authorization: Bearer {token}", url + path],
                                 capture_output=True, text=True, check=True).stdout
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            # The "Latency Distribution" lines: `     50%    1.04ms` (a thread-stats column such
            # as `62.50%` must not match).
            p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
            p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            results.append({"workload": f"{name}, 32 connections, {seconds} s ({label})",
                            "system": "tarn serve", "times": [], "rate": True,
                            "note": f"{rps:,.0f} req/s, p50 {p50}, p99 {p99}"
                                    + (f", {errors.group(1)} errors" if errors else "")})
        return results
    finally:
        server.terminate()
        server.wait()


def _append_versions(path: pathlib.Path, versions: int, files: int, first_id: int = 0) -> None:
    """`versions` appends of `files` files each (one per partition) with python deltalake."""
    import pyarrow as pa
    from deltalake import write_deltalake

    for v in range(versions):
        ids = list(range(first_id + v * files, first_id + (v + 1) * files))
        data = pa.table({"id": pa.array(ids, pa.int64()), "value": [i / 4 for i in ids],
                         "part": pa.array([i % files for i in ids], pa.int32())})
        write_deltalake(str(path), data, partition_by=["part"], mode="append")


def _rate(url: str, token: str, seconds: int, connections: int, headers: dict[str, str] | None = None) -> str:
    """Requests/s of GETs of `url` (with `headers`) on `connections` connections: `wrk`, else a
    Python loop on keep-alive connections (which the answer says)."""
    import re
    import threading
    import http.client

    if shutil.which("wrk"):
        extra = [a for k, v in (headers or {}).items() for a in ("-H", f"{k}: {v}")]
        out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                              "-H", f"Authorization: Bearer {token}", *extra, url],
                             capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return (f"{rps:,.0f} req/s, p50 {p50}, wrk {connections} connections"
                + (f", {errors.group(1)} errors" if errors else ""))
    parsed = urlparse(url)
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    threads = 4
    counts, failures = [0] * threads, [0] * threads
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        while time.monotonic() < deadline:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}", **(headers or {})})
            resp = conn.getresponse()
            resp.read()
            counts[k] += 1
            failures[k] += resp.status != 200
        conn.close()

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    start = time.monotonic()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    rps = sum(counts) / (time.monotonic() - start)
    return (f"{rps:,.0f} req/s, Python loop on {threads} keep-alive connections (no wrk: the client is the limit)"
            + (f", {sum(failures)} errors" if sum(failures) else ""))


def workload_iceberg(tarn: pathlib.Path, versions: int, files: int, rows: int, runs: int, seconds: int,
                     work: pathlib.Path) -> list[dict]:
    """The Iceberg REST catalog: loadTable on a table of `versions` versions of `files` files
    each, and scans of a `rows`-row table through Iceberg vs the Delta table directly."""
    import urllib.request

    import duckdb
    from deltalake import DeltaTable
    from pyiceberg.catalog import load_catalog

    wh = work / "iceberg_wh"
    g = ["--warehouse", str(wh)]
    tarn_cmd(tarn, *g, "catalog", "create", "main")
    tarn_cmd(tarn, *g, "schema", "create", "main.shop")
    big, small = work / "iceberg_big", work / "iceberg_small"
    _append_versions(big, versions, files)
    _append_versions(small, 10, files)
    parquet, _ = make_ingest_files(rows, work)
    scanned = work / "iceberg_scan"
    tarn_cmd(tarn, "write", str(scanned), str(parquet), "--create", "--no-progress")
    for name, path in (("big", big), ("small", small), ("scan", scanned)):
        tarn_cmd(tarn, *g, "register", f"main.shop.{name}", str(path))
    token = json.loads(tarn_cmd(tarn, *g, "--format", "json", "token", "create", "bench", "--scope", "read").stdout)["token"]
    server, url = start_server(tarn, g)
    base = f"{url}/iceberg/v1/main/namespaces/shop/tables"

    def load(name: str, query: str = "") -> int:
        req = urllib.request.Request(f"{base}/{name}{query}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return len(resp.read())

    results = []
    try:
        label = f"{versions:,} versions, {versions * files:,} files"
        start = time.perf_counter()
        size = load("big")
        results.append({"workload": f"iceberg: first loadTable ({label})", "system": "tarn serve",
                        "times": [time.perf_counter() - start],
                        "note": f"derives every version; answer {size / 1024:,.0f} KiB"})
        load("small")
        name = f"iceberg: loadTable after one new version of {files} files"
        # Each round appends one version, times the first load (which derives it), then the
        # same load again: the answer lists every snapshot, so both grow with the history,
        # and their difference is what deriving the new version cost.
        after: dict[tuple[str, str], list[float]] = {}
        for r in range(runs + 1):
            for table, path, done in (("big", big, versions), ("small", small, 10)):
                _append_versions(path, 1, files, first_id=(done + r) * files)
                for when in ("first", "again"):
                    start = time.perf_counter()
                    load(table)
                    if r:  # the first round is the warm-up
                        after.setdefault((table, when), []).append(time.perf_counter() - start)
        for when, what in (("first", name), ("again", "iceberg: the same loadTable again (nothing new)")):
            results.append({"workload": what, "system": f"tarn serve, {versions:,} versions",
                            "times": after[("big", when)], "note": "work follows the change"})
            results.append({"workload": what, "system": "same, on 10 versions", "times": after[("small", when)],
                            "note": "the ratio: big table / small table"})
        derive = {t: [a - b for a, b in zip(after[(t, "first")], after[(t, "again")])] for t in ("big", "small")}
        results.append({"workload": "iceberg: deriving one new version (first - again)",
                        "system": f"tarn serve, {versions:,} versions", "times": derive["big"],
                        "note": "work follows the change"})
        results.append({"workload": "iceberg: deriving one new version (first - again)",
                        "system": "same, on 10 versions", "times": derive["small"],
                        "note": "the ratio: big table / small table"})
        # pyiceberg (requests) asks for gzip, as the third line does.
        gzip = {"Accept-Encoding": "gzip, deflate"}
        for query, what, headers in (("", "every snapshot", None), ("?snapshots=refs", "snapshots=refs", None),
                                     ("", "every snapshot, gzip", gzip)):
            results.append({"workload": f"iceberg: repeated loadTable ({label}, {what})", "system": "tarn serve",
                            "times": [], "rate": True,
                            "note": _rate(f"{base}/big{query}", token, seconds, 32, headers)})

        catalog = load_catalog("bench", type="rest", uri=f"{url}/iceberg", warehouse="main", token=token)
        scan_name = f"iceberg: scan {rows:,} rows"
        iceberg_rows = [0]

        def pyiceberg_run() -> None:
            iceberg_rows[0] = catalog.load_table("shop.scan").scan().to_arrow().num_rows

        results.append({"workload": scan_name, "system": "tarn + pyiceberg", "times": timed(runs, pyiceberg_run),
                        "note": "loadTable + scan().to_arrow()"})
        results.append({"workload": scan_name, "system": "python deltalake", "note": "to_pyarrow_table()",
                        "times": timed(runs, lambda: DeltaTable(str(scanned)).to_pyarrow_table())})
        assert iceberg_rows[0] == rows, f"pyiceberg read {iceberg_rows[0]} rows of {rows}"
        con = duckdb.connect(config={"extension_directory": str(work / "duck_ice_ext"),
                                     "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        for ext in ("httpfs", "avro", "iceberg", "delta"):
            module = importlib.import_module(f"duckdb_extension_{ext}")
            con.execute(f"INSTALL '{pathlib.Path(module.__path__[0]) / 'extensions' / f'v{duckdb.__version__}' / f'{ext}.duckdb_extension'}'")
            con.execute(f"LOAD {ext}")
        con.execute(f"CREATE SECRET (TYPE iceberg, TOKEN '{token}')")
        con.execute(f"ATTACH 'main' AS ice (TYPE iceberg, ENDPOINT '{url}/iceberg')")
        sql = "SELECT category, COUNT(*), SUM(value), MAX(ts) FROM {} GROUP BY category ORDER BY category"
        through_iceberg = con.execute(sql.format("ice.shop.scan")).fetchall()
        through_delta = con.execute(sql.format(f"delta_scan('{scanned}')")).fetchall()
        # The same groups, counts and latest times; sums of doubles may differ in their last
        # digits with the order in which DuckDB's threads add them up.
        assert len(through_iceberg) == len(through_delta), (through_iceberg, through_delta)
        for a, b in zip(through_iceberg, through_delta):
            assert (a[0], a[1], a[3]) == (b[0], b[1], b[3]) and math.isclose(a[2], b[2], rel_tol=1e-9), (a, b)
        scan_name = f"iceberg: grouped aggregate over {rows:,} rows"
        results.append({"workload": scan_name, "system": "tarn + duckdb iceberg", "note": "",
                        "times": timed(runs, lambda: con.execute(sql.format("ice.shop.scan")).fetchall())})
        results.append({"workload": scan_name, "system": "duckdb delta_scan", "note": "",
                        "times": timed(runs, lambda: con.execute(sql.format(f"delta_scan('{scanned}')")).fetchall())})
    finally:
        server.terminate()
        server.wait()
    return results


def workload_cdc(tarn: pathlib.Path, rows: int, changes: int, steady_seconds: int, rate: int,
                 work: pathlib.Path) -> list[dict]:
    """Change data capture (`tarn import --cdc`): changes applied per second when catching up
    on a 70/20/10 update/insert/delete mix over a `rows`-row table (and the run's peak RSS),
    then the lag while `--follow` keeps up with a steady `rate` changes/s for
    `steady_seconds`: how long after each write its position is confirmed by the slot (only
    after the Delta commit). Needs wal_level = logical (skipped otherwise)."""
    url = os.environ.get("TARN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")

    def scalar(sql: str) -> str:
        return subprocess.run(["psql", "-Atq", url, "-c", sql], check=True, capture_output=True,
                              text=True).stdout.strip()

    if scalar("SHOW wal_level") != "logical":
        print("bench cdc: skipped (wal_level is not logical; tests/run.sh sets it as root)")
        return []
    table, slot = f"tarn_bench_cdc_{rows}", f"tarn_bench_cdc_{rows}"
    target = work / "tarn_cdc"

    def clean() -> None:
        psql(url, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  f"WHERE slot_name = '{slot}' AND NOT active")
        psql(url, f"DROP PUBLICATION IF EXISTS {slot}; DROP TABLE IF EXISTS {table}")

    clean()
    psql(url, f"""
        SELECT setseed(0.42);
        CREATE TABLE {table} (id bigint PRIMARY KEY, n int, amount numeric(12,2), name text);
        INSERT INTO {table} SELECT g, g, round((random() * 1000)::numeric, 2), 'customer_' || (g % 1000)
          FROM generate_series(1, {rows}) g;""")
    psql(url, f"VACUUM ANALYZE {table}")
    cmd = [str(tarn), "--format", "json", "import", url, "--source", table, "--into", str(target),
           "--cdc", "--slot", slot, "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    if first.returncode != 0:
        raise SystemExit(f"tarn import --cdc failed: {first.stderr}")
    next_id = [rows]

    def mix(n: int, per_txn: int) -> None:
        """`n` changes, 70% updates, 20% inserts, 10% deletes, `per_txn` per transaction."""
        body = []
        for start in range(0, n, per_txn):
            k = min(per_txn, n - start)
            u, i = k * 7 // 10, k * 2 // 10
            d = k - u - i
            body.append(f"""
              UPDATE {table} SET n = n + 1, amount = amount + 1 WHERE id IN
                (SELECT 1 + (random() * {next_id[0] - 1})::bigint FROM generate_series(1, {u}));
              INSERT INTO {table} SELECT {next_id[0]} + g, g, 1, 'new' FROM generate_series(1, {i}) g;
              DELETE FROM {table} WHERE id IN
                (SELECT 1 + (random() * {next_id[0] - 1})::bigint FROM generate_series(1, {d}));
              COMMIT;""")
            next_id[0] += i
        psql(url, "DO $$BEGIN " + "".join(body) + " END$$")

    mix(changes, 1_000)
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd, "--batch-changes", "500000"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tarn import --cdc failed: {proc.stderr}")
    report = json.loads(proc.stdout)
    peak = int(proc.stderr.strip().splitlines()[-1]) / 1024
    results = [{"workload": f"cdc: catch up {report['changes']:,} changes (70/20/10) on {rows:,} rows",
                "system": "tarn import --cdc", "times": [report["seconds"]],
                "note": f"{report['changes_per_second']:,.0f} changes/s, peak RSS {peak:.0f} MiB"}]

    # One source transaction that updates every row: its changes are kept in a temporary file
    # past TARN_CDC_SPILL_BYTES (64 MiB), so the peak RSS shows what stays in memory.
    psql(url, f"UPDATE {table} SET n = n + 1, name = name || '.'")
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tarn import --cdc failed: {proc.stderr}")
    report = json.loads(proc.stdout)
    peak = int(proc.stderr.strip().splitlines()[-1]) / 1024
    results.append({"workload": f"cdc: one transaction updating all {report['changes']:,} rows",
                    "system": "tarn import --cdc", "times": [report["seconds"]],
                    "note": f"{report['changes_per_second']:,.0f} changes/s, peak RSS {peak:.0f} MiB, "
                            f"{report['spilled_transactions']} transaction(s) spilled"})
    # Steady load: `rate` changes/s in 10 transactions a second, while --follow runs.
    follower = subprocess.Popen([*cmd, "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    lags: list[float] = []
    pending: list[tuple[float, str]] = []
    deadline = time.monotonic() + steady_seconds
    while time.monotonic() < deadline:
        tick = time.monotonic()
        mix(max(rate // 10, 10), max(rate // 10, 10))
        pending.append((time.monotonic(), scalar("SELECT pg_current_wal_lsn()")))
        confirmed = scalar(f"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'")
        while pending and scalar(f"SELECT '{confirmed}'::pg_lsn >= '{pending[0][1]}'::pg_lsn") == "t":
            lags.append(time.monotonic() - pending.pop(0)[0])
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    end = time.monotonic() + 60
    while pending and time.monotonic() < end:
        confirmed = scalar(f"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'")
        while pending and scalar(f"SELECT '{confirmed}'::pg_lsn >= '{pending[0][1]}'::pg_lsn") == "t":
            lags.append(time.monotonic() - pending.pop(0)[0])
        time.sleep(0.05)
    # Peak RSS so far (the kernel's high-water mark), then SIGTERM: commit, confirm, exit 0.
    status = pathlib.Path(f"/proc/{follower.pid}/status").read_text()
    follow_peak = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:"))) / 1024
    follower.terminate()
    out, err = follower.communicate(timeout=60)
    if follower.returncode != 0:
        raise SystemExit(f"tarn import --cdc --follow failed: {err}")
    if lags:
        lags.sort()
        results.append({"workload": f"cdc: lag at {rate:,} changes/s for {steady_seconds} s", "system": "tarn --follow",
                        "rate": True, "note": f"lag median {statistics.median(lags):.2f} s, "
                                              f"p95 {lags[int(len(lags) * 0.95) - 1 if len(lags) > 1 else 0]:.2f} s, "
                                              f"max {lags[-1]:.2f} s, peak RSS {follow_peak:.0f} MiB"})
    # Last (it triples the table): three times the rows in one transaction (every row updated again, twice as many
    # inserted): a spilled transaction is folded in parts and merged from a file, so the
    # peak should not grow with it.
    psql(url, f"""BEGIN;
        UPDATE {table} SET n = n + 1, name = name || '.';
        INSERT INTO {table} SELECT {next_id[0]} + g, g, 1, 'big' FROM generate_series(1, {2 * rows}) g;
        COMMIT;""")
    next_id[0] += 2 * rows
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tarn import --cdc failed: {proc.stderr}")
    report = json.loads(proc.stdout)
    peak = int(proc.stderr.strip().splitlines()[-1]) / 1024
    results.append({"workload": f"cdc: one transaction of {report['changes']:,} changes "
                                f"(every row updated, {2 * rows:,} inserted)",
                    "system": "tarn import --cdc", "times": [report["seconds"]],
                    "note": f"{report['changes_per_second']:,.0f} changes/s, peak RSS {peak:.0f} MiB, "
                            f"{report['spilled_transactions']} transaction(s) spilled"})
    clean()
    shutil.rmtree(target, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 rows, 3 runs")
    size.add_argument("--tiny", action="store_true", help="1,000 rows, 1 run: checks the harness works")
    parser.add_argument("--rows", type=int, help="rows for the import workload")
    parser.add_argument("--runs", type=int, help="timed runs per system")
    parser.add_argument("--only", choices=["ingest", "memory", "commits", "history", "query", "import", "server",
                                           "iceberg", "cdc"],
                        action="append", help="run only this workload (repeatable)")
    args = parser.parse_args()
    rows, runs = (1_000, 1) if args.tiny else (100_000, 3) if args.quick else (1_000_000, 5)
    rows, runs = args.rows or rows, args.runs or runs
    ingest_rows = 1_000 if args.tiny else 1_000_000 if args.quick else 10_000_000
    memory_rows = 1_000 if args.tiny else 1_000_000 if args.quick else 10_000_000
    commits = 8 if args.tiny else 100 if args.quick else 1_000
    history = 20 if args.tiny else 1_000 if args.quick else 10_000
    seconds = 1 if args.tiny else 5 if args.quick else 10
    dash_orders = 1_000 if args.tiny else 1_000_000 if args.quick else 10_000_000
    dash_users = max(10, dash_orders // 100)
    cdc_rows, cdc_changes = (1_000, 2_000) if args.tiny else (100_000, 100_000) if args.quick else (1_000_000, 300_000)
    cdc_seconds, cdc_rate = (2, 500) if args.tiny else (10, 5_000) if args.quick else (30, 5_000)
    iceberg_versions = 20 if args.tiny else 200 if args.quick else 1_000
    only = set(args.only or ["ingest", "memory", "commits", "history", "query", "import", "server", "iceberg",
                             "cdc"])
    tarn, profile = tarn_binary()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; tarn: {tarn} ({profile})")
    if profile == "debug":
        print("note: a debug build of tarn: its figures are not representative (cargo build --release)")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tarn-bench-") as d:
        work = pathlib.Path(d)
        if "ingest" in only:
            results += workload_ingest(tarn, ingest_rows, runs, work)
        if "memory" in only:
            results += workload_memory(tarn, memory_rows, work)
        if "commits" in only:
            results += workload_commits(tarn, commits, work)
        if "history" in only:
            results += workload_history(tarn, history, runs, work)
        if "query" in only:
            results += workload_query(tarn, runs, work, users=dash_users, orders=dash_orders)
        if "import" in only:
            results += workload_import(tarn, rows, runs, work)
        if "server" in only:
            results += workload_server(tarn, seconds, work)
        if "iceberg" in only:
            results += workload_iceberg(tarn, iceberg_versions, 10, rows, runs, seconds, work)
        if "cdc" in only:
            results += workload_cdc(tarn, cdc_rows, cdc_changes, cdc_seconds, cdc_rate, work)
    print(f"\n{'workload':56} {'system':24} {'median (min-max)':30} ratio tarn/peer  note")
    tarn_median = None
    for r in results:
        if r.get("rate"):
            print(f"{r['workload']:56} {r['system']:24} {'-':30} {'':16} {r['note']}")
            continue
        median = statistics.median(r["times"])
        if r["system"].startswith("tarn"):
            tarn_median, ratio = median, ""
        else:
            ratio = f"{tarn_median / median:.2f}" if tarn_median else ""
        print(f"{r['workload']:56} {r['system']:24} {summary(r['times']):30} {ratio:16} {r['note']}")


if __name__ == "__main__":
    main()
