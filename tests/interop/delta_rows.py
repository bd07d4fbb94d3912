"""Rows as every client sees them, brought to one comparable form.

Clients disagree on representation, not on values: `tarn --format json` may print a
decimal as "12.50" or 12.5 and a timestamp as "2026-01-01T09:00:00Z" or
"2026-01-01 09:00:00", while python deltalake, DuckDB and polars return `Decimal` and
timezone-aware `datetime`. `canonical_rows` maps each column through a converter so that
equal values compare equal and different values never do.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, Callable, Iterable, Mapping

Converter = Callable[[Any], Any]
UTC = dt.timezone.utc


def as_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise AssertionError(f"expected an integer, got {value!r}")
    return int(value)


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AssertionError(f"expected a string, got {value!r}")
    return value


def as_decimal(scale: int) -> Converter:
    """Decimals given as Decimal, int, float or string, compared at `scale` digits."""
    quantum = decimal.Decimal(1).scaleb(-scale)

    def convert(value: Any) -> decimal.Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise AssertionError(f"expected a decimal, got {value!r}")
        if isinstance(value, float):
            value = repr(value)
        try:
            return decimal.Decimal(str(value)).quantize(quantum)
        except decimal.InvalidOperation as e:
            raise AssertionError(f"expected a decimal, got {value!r}") from e

    return convert


def as_utc_timestamp(value: Any) -> dt.datetime | None:
    """Timestamps given as datetimes or ISO 8601 / RFC 3339 strings, as aware UTC datetimes.

    A timestamp without an offset is taken to be UTC (Delta's `timestamp` is UTC).
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[: -len(" UTC")]
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as e:
            raise AssertionError(f"expected a timestamp, got {value!r}") from e
    if not isinstance(value, dt.datetime):
        raise AssertionError(f"expected a timestamp, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def canonical_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Mapping[str, Converter],
    *,
    source: str,
    nulls_may_be_omitted: bool = False,
) -> list[dict[str, Any]]:
    """Converts every row through `columns`, sorted by the first column.

    Each row must have exactly these columns. With `nulls_may_be_omitted` (JSON printers
    often drop null fields) a missing column counts as null, but an extra one still fails.
    """
    names = list(columns)
    result = []
    for row in rows:
        keys = set(row)
        extra = keys - set(names)
        missing = set(names) - keys
        assert not extra, f"{source}: unexpected column(s) {sorted(extra)} in row {dict(row)!r}"
        assert nulls_may_be_omitted or not missing, (
            f"{source}: column(s) {sorted(missing)} missing from row {dict(row)!r}"
        )
        try:
            result.append({name: columns[name](row.get(name)) for name in names})
        except AssertionError as e:
            raise AssertionError(f"{source}: {e} in row {dict(row)!r}") from e
    key = names[0]
    return sorted(result, key=lambda r: (r[key] is None, r[key]))


def commit_time_ms(value: Any) -> int:
    """A commit timestamp, as `tarn history` may print it (ms since epoch or RFC 3339), in ms."""
    if isinstance(value, bool):
        raise AssertionError(f"expected a commit timestamp, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    moment = as_utc_timestamp(value)
    assert moment is not None, "commit timestamp is null"
    return round(moment.timestamp() * 1000)


def rfc3339_at_or_after(ms: int) -> str:
    """The first whole second at or after `ms`, as RFC 3339 (what `--as-of` takes).

    With commits more than a second apart, this instant falls between a commit and the next.
    """
    seconds = -(-ms // 1000)
    return dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
