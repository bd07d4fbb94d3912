#!/usr/bin/env python3
"""Tarn's benchmark harness: each workload runs Tarn and its peers on the same data, in the
same run, and prints the median of several timed runs (after one warm-up run each), the
spread (min-max), and the ratio Tarn/peer.

Workloads:
  import  N rows from the local PostgreSQL into a new table: `tarn import` vs DuckDB's
          postgres extension copying the same table to Parquet (COPY ... TO ... FORMAT
          parquet, no transaction log: the floor).

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
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def timed(runs: int, fn: Callable[[], None]) -> list[float]:
    fn()  # warm-up, not counted
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(times: list[float]) -> str:
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

    tarn_times = timed(runs, tarn_run)
    duck_times = timed(runs, duckdb_run)
    psql(url, f"DROP TABLE {table}")
    results.append({"workload": f"import {rows:,} rows from PostgreSQL", "system": "tarn import",
                    "times": tarn_times, "note": f"peak RSS {peak_kib[0] / 1024:.0f} MiB"})
    results.append({"workload": f"import {rows:,} rows from PostgreSQL", "system": "duckdb postgres -> parquet",
                    "times": duck_times, "note": "no transaction log"})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 rows, 3 runs")
    size.add_argument("--tiny", action="store_true", help="1,000 rows, 1 run: checks the harness works")
    parser.add_argument("--rows", type=int, help="rows for the import workload")
    parser.add_argument("--runs", type=int, help="timed runs per system")
    args = parser.parse_args()
    rows, runs = (1_000, 1) if args.tiny else (100_000, 3) if args.quick else (1_000_000, 5)
    rows, runs = args.rows or rows, args.runs or runs
    tarn, profile = tarn_binary()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; tarn: {tarn} ({profile})")
    if profile == "debug":
        print("note: a debug build of tarn: its figures are not representative (cargo build --release)")
    with tempfile.TemporaryDirectory(prefix="tarn-bench-") as d:
        results = workload_import(tarn, rows, runs, pathlib.Path(d))
    print(f"\n{'workload':38} {'system':28} {'median (min-max)':28} note")
    for r in results:
        print(f"{r['workload']:38} {r['system']:28} {summary(r['times']):28} {r['note']}")
    tarn_median = statistics.median(results[0]["times"])
    for peer in results[1:]:
        print(f"ratio tarn/{peer['system']}: {tarn_median / statistics.median(peer['times']):.2f}")


if __name__ == "__main__":
    main()
