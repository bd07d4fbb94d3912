"""Concurrent `tarn write` processes on one local table: every commit lands, once."""

from __future__ import annotations

from pathlib import Path

from deltalake import DeltaTable

from concurrent_appends import ROWS_PER_APPEND, assert_every_append_landed, race_appends
from input_files import ORDERS_SCHEMA
from tarn_cli import TarnCli

WRITERS = 4
APPENDS = 5


def test_concurrent_local_appends_all_land_with_contiguous_versions(tarn: TarnCli, tmp_path: Path) -> None:
    table = tmp_path / "orders"
    tarn.create(table, ORDERS_SCHEMA)
    race = race_appends(tarn, str(table), tmp_path, writers=WRITERS, appends=APPENDS)
    assert_every_append_landed(tarn, str(table), race)

    delta = DeltaTable(str(table))
    assert delta.version() == WRITERS * APPENDS
    ids = delta.to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    assert len(ids) == WRITERS * APPENDS * ROWS_PER_APPEND
    assert set(ids) == race.expected_ids
