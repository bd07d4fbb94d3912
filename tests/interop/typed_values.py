"""Values of every Delta type in one comparable form, per Arrow type: what a reader returns
(pyarrow's `to_pylist`, through `canon`) and what `tarn query --format json` prints (through
`from_json`) become equal exactly when the values are. docs/cli.md ("How values are printed")
says how Tarn prints them: floats that are not finite as "NaN"/"Infinity"/"-Infinity",
binary as lowercase hex, decimals and integers as exact numbers, maps with string keys as
objects and others as lists of {"key", "value"}.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa

UTC = dt.timezone.utc

# Decimals compared with every digit (the default context keeps 28).
EXACT = decimal.Context(prec=100)


def canon(value: Any, t: pa.DataType) -> Any:
    """A reader's value (pyarrow's `to_pylist`) in a form equal values share."""
    if value is None:
        return None
    if pa.types.is_float32(t):
        return float_canon(float(np.float32(value)))
    if pa.types.is_floating(t):
        return float_canon(float(value))
    if pa.types.is_decimal(t):
        return decimal.Decimal(value).normalize(EXACT)
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if pa.types.is_date(t):
        return value.isoformat()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return bytes(value).hex()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return [canon(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        return {t.field(i).name: canon(value[t.field(i).name], t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_map(t):
        return [(canon(k, t.key_type), canon(v, t.item_type)) for k, v in value]
    return value


def float_canon(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def from_json(value: Any, t: pa.DataType) -> Any:
    """A value of tarn's JSON (parsed with decimals kept exact) in the form of `canon`."""
    if value is None:
        return None
    if pa.types.is_floating(t):
        if isinstance(value, str):
            assert value in ("NaN", "Infinity", "-Infinity"), value
            return value
        assert isinstance(value, (int, decimal.Decimal)), f"a float should be a JSON number: {value!r}"
        if pa.types.is_float32(t):
            return float_canon(float(np.float32(float(value))))
        return float_canon(float(value))
    if pa.types.is_decimal(t):
        assert isinstance(value, (int, decimal.Decimal)), f"a decimal should be a JSON number: {value!r}"
        return decimal.Decimal(value).normalize(EXACT)
    if pa.types.is_integer(t):
        assert isinstance(value, int) and not isinstance(value, bool), value
        return value
    if pa.types.is_boolean(t):
        assert isinstance(value, bool), value
        return value
    if pa.types.is_timestamp(t):
        return timestamp_text(value, t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        assert isinstance(value, list), value
        return [from_json(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        assert isinstance(value, dict) and len(value) == t.num_fields, value
        return {t.field(i).name: from_json(value[t.field(i).name], t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_map(t):
        if pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type):
            assert isinstance(value, dict), f"a map with string keys should be an object: {value!r}"
            return [(k, from_json(v, t.item_type)) for k, v in value.items()]
        assert isinstance(value, list), f"a map with other keys should be a list: {value!r}"
        out = []
        for entry in value:
            assert isinstance(entry, dict) and set(entry) == {"key", "value"}, entry
            out.append((from_json(entry["key"], t.key_type), from_json(entry["value"], t.item_type)))
        return out
    assert isinstance(value, str), f"{t} should be a JSON string: {value!r}"
    return value


def timestamp_text(text: str, t: pa.TimestampType) -> str:
    """RFC 3339 text of a timestamp, in the form of `canon` (UTC with Z, or without zone)."""
    parsed = dt.datetime.fromisoformat(text)
    if t.tz is not None:
        assert parsed.tzinfo is not None, f"a timestamp should carry its zone: {text}"
        return parsed.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    assert parsed.tzinfo is None, f"a timestamp_ntz should carry no zone: {text}"
    return parsed.isoformat()


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    schema = table.schema
    return [{f.name: canon(r[f.name], f.type) for f in schema} for r in table.to_pylist()]


def sort_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)
