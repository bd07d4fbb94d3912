"""Several `tarn write` appenders racing on one table, and the checks that none was lost."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from input_files import write_csv
from tarn_cli import TarnCli

ROWS_PER_APPEND = 2


@dataclass
class AppendRace:
    """What a race of `writers` processes, each appending `appends` files in turn, did."""

    writers: int
    appends: int
    reports: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def expected_ids(self) -> set[int]:
        return {
            row_id(w, i, r)
            for w in range(self.writers)
            for i in range(self.appends)
            for r in range(ROWS_PER_APPEND)
        }


def row_id(writer: int, append: int, row: int) -> int:
    return 1_000_000 + writer * 10_000 + append * 10 + row


def race_appends(tarn: TarnCli, table: str, scratch: Path, writers: int, appends: int) -> AppendRace:
    """Starts `writers` threads at once; each runs `tarn write` `appends` times in a row.

    The tarn processes of different threads overlap, so their commits conflict and must
    be retried by tarn; no error is swallowed here.
    """
    race = AppendRace(writers, appends)
    files = {}
    for w in range(writers):
        for i in range(appends):
            rows = [
                {
                    "id": row_id(w, i, r),
                    "name": f"writer {w} append {i}",
                    "amount": decimal.Decimal(f"{w}.{i}{r}"),
                    "ts": dt.datetime(2026, 1, 1, w, i, r, tzinfo=dt.timezone.utc),
                }
                for r in range(ROWS_PER_APPEND)
            ]
            files[w, i] = write_csv(scratch / f"writer{w}-append{i}.csv", rows)

    start = threading.Barrier(writers)
    lock = threading.Lock()

    def writer(w: int) -> None:
        start.wait()
        for i in range(appends):
            try:
                report = tarn.write(table, files[w, i])
            except AssertionError as e:
                with lock:
                    race.errors.append(f"writer {w} append {i}: {e}")
                continue
            with lock:
                race.reports.append(report)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return race


def assert_every_append_landed(tarn: TarnCli, table: str, race: AppendRace) -> None:
    """Every append succeeded with its own version; versions 0..N are contiguous; no row lost."""
    total = race.writers * race.appends
    assert not race.errors, "some concurrent appends failed:\n" + "\n\n".join(race.errors)

    reported = sorted(r["version"] for r in race.reports)
    assert reported == list(range(1, total + 1)), f"versions reported by `tarn write`: {reported}"
    assert all(r["rows"] == ROWS_PER_APPEND for r in race.reports), race.reports

    versions = sorted(c["version"] for c in tarn.history(table))
    assert versions == list(range(0, total + 1)), f"versions in `tarn history`: {versions}"

    rows = tarn.query("SELECT id FROM t", {"t": table})
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == total * ROWS_PER_APPEND, f"{len(ids)} rows, expected {total * ROWS_PER_APPEND}"
    assert set(ids) == race.expected_ids
