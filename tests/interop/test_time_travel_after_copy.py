"""Time travel by timestamp follows the commit times recorded in the log, not file times:
a copied table (every log file's mtime now "now") answers `--as-of` like the original."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from delta_rows import canonical_rows, commit_time_ms, rfc3339_at_or_after
from input_files import ORDERS_COLUMNS, ORDERS_SCHEMA, write_csv
from tarn_cli import TarnCli

SECONDS_BETWEEN_COMMITS = 1.1
APPENDS = [
    [{"id": 1, "name": "one", "amount": Decimal("1.00"), "ts": "2026-01-01T00:00:01Z"}],
    [{"id": 2, "name": "two", "amount": Decimal("2.00"), "ts": "2026-01-01T00:00:02Z"}],
    [{"id": 3, "name": "three", "amount": Decimal("3.00"), "ts": "2026-01-01T00:00:03Z"}],
]


@dataclass
class CopiedTable:
    original: Path
    copy: Path
    commit_ms: dict[int, int]  # version -> commit time from the original's `tarn history`


@pytest.fixture(scope="module")
def copied_table(tarn: TarnCli, tmp_path_factory: pytest.TempPathFactory) -> CopiedTable:
    scratch = tmp_path_factory.mktemp("time-travel")
    original = scratch / "original" / "orders"
    tarn.create(original, ORDERS_SCHEMA)
    for i, rows in enumerate(APPENDS, start=1):
        time.sleep(SECONDS_BETWEEN_COMMITS)
        tarn.write(original, write_csv(scratch / f"append{i}.csv", rows))
    commit_ms = {c["version"]: commit_time_ms(c["timestamp"]) for c in tarn.history(original)}
    assert sorted(commit_ms) == [0, 1, 2, 3]

    time.sleep(SECONDS_BETWEEN_COMMITS)  # so that "now" is after every commit
    copy = scratch / "copy" / "orders"
    shutil.copytree(original, copy)  # like `cp -r`; then make sure no mtime survived:
    now = time.time()
    for log_file in (copy / "_delta_log").iterdir():
        os.utime(log_file, (now, now))
    return CopiedTable(original, copy, commit_ms)


def rows_as_of(tarn: TarnCli, table: Path, as_of: str) -> list[dict[str, Any]]:
    rows = tarn.query("SELECT * FROM orders", {"orders": table}, as_of=as_of)
    return canonical_rows(rows, ORDERS_COLUMNS, source=f"tarn --as-of {as_of} on {table}", nulls_may_be_omitted=True)


def test_history_of_a_copy_keeps_the_original_commit_times(tarn: TarnCli, copied_table: CopiedTable) -> None:
    copy_ms = {c["version"]: commit_time_ms(c["timestamp"]) for c in tarn.history(copied_table.copy)}
    assert copy_ms == copied_table.commit_ms


def test_commit_times_are_increasing_and_more_than_a_second_apart(copied_table: CopiedTable) -> None:
    times = [copied_table.commit_ms[v] for v in sorted(copied_table.commit_ms)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap >= 1000 for gap in gaps), f"commit times {times} (the writes slept 1.1 s between commits)"


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_as_of_on_a_copy_returns_what_the_original_returns(
    tarn: TarnCli, copied_table: CopiedTable, version: int
) -> None:
    as_of = rfc3339_at_or_after(copied_table.commit_ms[version])
    want = canonical_rows(
        [row for rows in APPENDS[:version] for row in rows], ORDERS_COLUMNS, source="expected"
    )
    assert rows_as_of(tarn, copied_table.original, as_of) == want
    assert rows_as_of(tarn, copied_table.copy, as_of) == want


def test_as_of_before_the_first_commit_is_an_error(tarn: TarnCli, copied_table: CopiedTable) -> None:
    tarn.fails("query", "SELECT * FROM orders", "--table", f"orders={copied_table.copy}", "--as-of", "2001-01-01T00:00:00Z")
