"""Tables shared over Delta Sharing by `tarn serve`, read with the real python
`delta-sharing` client from the profile file `tarn recipient create` writes: the same rows
as `tarn query` at every version and time, across a schema change, and the refusals the
protocol asks for (unknown names, out-of-range versions, revoked tokens, forged URLs)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from delta_rows import as_str, canonical_rows, commit_time_ms
from input_files import ORDERS_COLUMNS, ORDERS_SCHEMA, write_csv
from tarn_cli import TarnCli
from tarn_server import TarnServer

EVOLVED_COLUMNS = {**ORDERS_COLUMNS, "note": as_str}

# The client fetches file URLs with fsspec, which would go through a proxy from the
# environment; the server under test is on loopback.
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))


def order_rows(first: int, n: int, note: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for i in range(first, first + n):
        row = {"id": i, "name": f"c{i % 3}", "amount": f"{i}.25", "ts": f"2026-01-0{1 + i % 9}T10:00:00Z"}
        if note is not None:
            row["note"] = f"{note}{i}"
        rows.append(row)
    return rows


@dataclass
class Shared:
    wh: Path
    server: TarnServer
    profile: Path
    versions: list[int]
    history: list[dict[str, Any]]

    def g(self) -> tuple[str, str]:
        return ("--warehouse", str(self.wh))


@pytest.fixture
def shared(tarn: TarnCli, tmp_path: Path) -> Iterator[Shared]:
    """main.shop.orders over 5 versions (create, 2 appends, a new column, an append with it),
    main.shop.secret (never shared), share `partners` with orders as sales.orders (with
    history), recipient `acme` with a profile; a running server."""
    wh = tmp_path / "wh"
    g = ("--warehouse", str(wh))
    tarn.run(*g, "catalog", "create", "main")
    tarn.run(*g, "schema", "create", "main.shop")
    tarn.run(*g, "create", "main.shop.orders", "--schema", ORDERS_SCHEMA)
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "a.csv", order_rows(1, 6)), "--no-progress")
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "b.csv", order_rows(7, 4)), "--no-progress")
    tarn.run(*g, "alter", "main.shop.orders", "add-column", "note string")
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "c.csv", order_rows(11, 3, note="n")), "--no-progress")
    tarn.run(*g, "create", "main.shop.secret", "--schema", ORDERS_SCHEMA)
    tarn.run(*g, "write", "main.shop.secret", write_csv(tmp_path / "s.csv", order_rows(100, 2)), "--no-progress")
    tarn.run(*g, "share", "create", "partners")
    tarn.run(*g, "share", "add", "partners", "main.shop.orders", "--as", "sales.orders", "--history")
    server = TarnServer(tarn.binary, *g)
    profile = tmp_path / "acme.share"
    tarn.run(*g, "recipient", "create", "acme", "--share", "partners", "--expires", "1d",
             "--profile", profile, "--endpoint", server.url + "/delta-sharing")
    history = tarn.run_json(*g, "history", "main.shop.orders")
    versions = sorted(c["version"] for c in history)
    yield Shared(wh, server, profile, versions, history)
    assert server.stop() == 0, "graceful shutdown on SIGTERM"


def pandas_rows(df: Any) -> list[dict[str, Any]]:
    """A DataFrame as plain Python rows (numpy scalars to Python, NaN/None to None)."""
    plain = df.astype(object).where(df.notna(), None)
    return plain.to_dict("records")


def tarn_rows(tarn: TarnCli, s: Shared, columns: dict, **at: Any) -> list[dict[str, Any]]:
    args = ["query", "SELECT * FROM t", "--table", "t=main.shop.orders"]
    if "version" in at:
        args += ["--version", str(at["version"])]
    if "as_of" in at:
        args += ["--as-of", at["as_of"]]
    rows = tarn.run_json(*s.g(), *args)
    return canonical_rows(rows, columns, source="tarn query", nulls_may_be_omitted=True)


def shared_rows(s: Shared, columns: dict, **kwargs: Any) -> list[dict[str, Any]]:
    import delta_sharing

    df = delta_sharing.load_as_pandas(f"{s.profile}#partners.sales.orders", **kwargs)
    return canonical_rows(pandas_rows(df), columns, source="delta_sharing.load_as_pandas")


def test_the_profile_file_lists_exactly_the_shared_tables(shared: Shared) -> None:
    import delta_sharing

    profile = json.loads(shared.profile.read_text())
    assert profile["shareCredentialsVersion"] == 1
    assert profile["endpoint"] == shared.server.url + "/delta-sharing"
    assert profile["bearerToken"] and profile["expirationTime"]
    assert shared.profile.stat().st_mode & 0o077 == 0, "the profile holds a secret: owner-only"

    client = delta_sharing.SharingClient(str(shared.profile))
    assert [s.name for s in client.list_shares()] == ["partners"]
    assert [(t.share, t.schema, t.name) for t in client.list_all_tables()] == [("partners", "sales", "orders")]
    schemas = client.list_schemas(delta_sharing.Share("partners"))
    assert [s.name for s in schemas] == ["sales"]


def test_latest_every_version_and_every_commit_time_match_tarn_query(tarn: TarnCli, shared: Shared) -> None:
    latest = shared.versions[-1]
    assert shared_rows(shared, EVOLVED_COLUMNS) == tarn_rows(tarn, shared, EVOLVED_COLUMNS)
    assert len(shared_rows(shared, EVOLVED_COLUMNS)) == 13
    for version in shared.versions:
        columns = EVOLVED_COLUMNS if version >= 3 else ORDERS_COLUMNS
        expected = tarn_rows(tarn, shared, columns, version=version)
        assert shared_rows(shared, columns, version=version) == expected, f"version {version}"
    for commit in shared.history:
        version = commit["version"]
        at = commit["timestamp"] if isinstance(commit["timestamp"], str) else None
        assert at is not None, commit
        columns = EVOLVED_COLUMNS if version >= 3 else ORDERS_COLUMNS
        expected = tarn_rows(tarn, shared, columns, as_of=at)
        assert shared_rows(shared, columns, timestamp=at) == expected, f"timestamp {at} (version {version})"
    assert latest == 4


def test_the_schema_change_reads_at_old_and_new_versions(shared: Shared) -> None:
    import delta_sharing

    url = f"{shared.profile}#partners.sales.orders"
    old = delta_sharing.load_as_pandas(url, version=2)
    assert list(old.columns) == ["id", "name", "amount", "ts"]
    assert len(old) == 10
    new = delta_sharing.load_as_pandas(url)
    assert list(new.columns) == ["id", "name", "amount", "ts", "note"]
    notes = {int(r["id"]): r["note"] for r in pandas_rows(new)}
    assert notes[1] is None and notes[11] == "n11", notes


def test_limit_reads_no_more_rows_than_asked(shared: Shared) -> None:
    import delta_sharing

    df = delta_sharing.load_as_pandas(f"{shared.profile}#partners.sales.orders", limit=3)
    assert len(df) == 3


def sharing_request(s: Shared, method: str, path: str, body: Any = None, token: str | None = None,
                    headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    if token is None:
        token = json.loads(s.profile.read_text())["bearerToken"]
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(s.server.url + "/delta-sharing" + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def error_of(body: bytes) -> dict[str, Any]:
    error = json.loads(body)
    assert set(error) == {"errorCode", "message"}, error
    return error


def test_unknown_or_unshared_names_are_404_and_bad_versions_400(shared: Shared) -> None:
    t = "/shares/partners/schemas/sales/tables"
    for path in ["/shares/nope", "/shares/nope/schemas", "/shares/partners/schemas/nope/tables",
                 f"{t}/nope/version", "/shares/partners/schemas/shop/tables/secret/metadata"]:
        status, _, body = sharing_request(shared, "GET", path)
        assert status == 404, (path, body)
        assert error_of(body)["errorCode"] == "RESOURCE_DOES_NOT_EXIST"
    status, headers, body = sharing_request(shared, "GET", f"{t}/orders/version")
    assert status == 200 and headers["delta-table-version"] == "4", (status, headers, body)

    status, _, body = sharing_request(shared, "POST", f"{t}/orders/query", {"version": 99})
    assert status == 400, body
    assert "valid versions are 0 to 4" in error_of(body)["message"]
    status, _, body = sharing_request(shared, "POST", f"{t}/orders/query", {"timestamp": "2001-01-01T00:00:00Z"})
    assert status == 400, body
    assert "history runs from" in error_of(body)["message"]
    status, _, body = sharing_request(shared, "POST", f"{t}/orders/query", {"version": 1, "timestamp": "2001-01-01T00:00:00Z"})
    assert status == 400, body
    status, _, body = sharing_request(shared, "POST", f"{t}/orders/query", b"not json".decode())
    assert status == 400, body


def query_lines(s: Shared, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    status, resp_headers, raw = sharing_request(
        s, "POST", "/shares/partners/schemas/sales/tables/orders/query", body, headers=headers)
    assert status == 200, raw
    assert resp_headers["content-type"].startswith("application/x-ndjson")
    assert "delta-table-version" in resp_headers
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def test_file_urls_answer_head_and_ranges_and_refuse_forgery(shared: Shared) -> None:
    lines = query_lines(shared, {})
    files = [line["file"] for line in lines if "file" in line]
    assert files and all(f["expirationTimestamp"] > 0 for f in files)
    url = files[0]["url"]
    size = files[0]["size"]
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as resp:
        assert int(resp.headers["Content-Length"]) == size
        assert resp.headers["Accept-Ranges"] == "bytes"
    req = urllib.request.Request(url, headers={"Range": "bytes=0-3"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 206
        assert resp.read() == b"PAR1"
        assert resp.headers["Content-Range"] == f"bytes 0-3/{size}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        whole = resp.read()
        assert len(whole) == size and whole.endswith(b"PAR1")

    # Tampering with the ticket or the signature: 403, and nothing served.
    payload, signature = url.rsplit("/", 1)[1].split(".")
    for forged in [url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
                   url.replace(payload, payload[:-2] + "xx"),
                   url.rsplit("/", 1)[0] + "/" + payload]:
        try:
            urllib.request.urlopen(forged, timeout=30)
            raise AssertionError(f"forged URL was served: {forged}")
        except urllib.error.HTTPError as e:
            assert e.code == 403, (forged, e.code)
            assert error_of(e.read())["errorCode"] == "PERMISSION_DENIED"


def test_revoking_the_recipient_stops_its_token_and_its_urls(tarn: TarnCli, shared: Shared) -> None:
    import delta_sharing

    url = next(line["file"]["url"] for line in query_lines(shared, {}) if "file" in line)
    tarn.run(*shared.g(), "recipient", "revoke", "acme")
    status, _, body = sharing_request(shared, "GET", "/shares")
    assert status == 401 and error_of(body)["errorCode"] == "UNAUTHENTICATED"
    status, _, body = sharing_request(shared, "GET", "/shares", token="tarn_forged")
    assert status == 401
    try:
        urllib.request.urlopen(url, timeout=30)
        raise AssertionError("a revoked recipient's file URL was served")
    except urllib.error.HTTPError as e:
        assert e.code == 403
    with pytest.raises(Exception):
        delta_sharing.SharingClient(str(shared.profile)).list_all_tables()


def test_a_recipient_sees_only_its_shares(tarn: TarnCli, shared: Shared, tmp_path: Path) -> None:
    g = shared.g()
    tarn.run(*g, "share", "create", "internal")
    tarn.run(*g, "share", "add", "internal", "main.shop.secret")
    other = tmp_path / "other.share"
    tarn.run(*g, "recipient", "create", "other", "--share", "internal", "--profile", other,
             "--endpoint", shared.server.url + "/delta-sharing")
    import delta_sharing

    assert [(t.share, t.schema, t.name) for t in delta_sharing.SharingClient(str(other)).list_all_tables()] == [
        ("internal", "shop", "secret")]
    token = json.loads(other.read_text())["bearerToken"]
    status, _, body = sharing_request(shared, "GET", "/shares/partners/all-tables", token=token)
    assert status == 404, body
    # `internal` has no history: the latest version reads, time travel is refused.
    df = delta_sharing.load_as_pandas(f"{other}#internal.shop.secret")
    assert sorted(int(i) for i in df["id"]) == [100, 101]
    status, _, body = sharing_request(
        shared, "POST", "/shares/internal/schemas/shop/tables/secret/query", {"version": 0}, token=token)
    assert status == 403, body


def test_predicate_hints_prune_partitions(tarn: TarnCli, shared: Shared, tmp_path: Path) -> None:
    g = shared.g()
    tarn.run(*g, "create", "main.shop.by_region", "--schema", "id bigint, region string", "--partition-by", "region")
    csv = write_csv(tmp_path / "r.csv", [{"id": i, "region": ["EU", "US", "APAC"][i % 3]} for i in range(9)])
    tarn.run(*g, "write", "main.shop.by_region", csv, "--no-progress")
    tarn.run(*g, "share", "add", "partners", "main.shop.by_region", "--as", "sales.by_region")
    hint = json.dumps({"op": "equal", "children": [
        {"op": "column", "name": "region", "valueType": "string"},
        {"op": "literal", "value": "EU", "valueType": "string"}]})
    status, _, raw = sharing_request(shared, "POST", "/shares/partners/schemas/sales/tables/by_region/query",
                                     {"jsonPredicateHints": hint})
    assert status == 200, raw
    files = [json.loads(line)["file"] for line in raw.decode().splitlines() if '"file"' in line]
    assert [f["partitionValues"] for f in files] == [{"region": "EU"}]
    import delta_sharing

    df = delta_sharing.load_as_pandas(f"{shared.profile}#partners.sales.by_region", jsonPredicateHints=hint)
    assert sorted(df["region"]) == ["EU"] * 3


def test_delta_format_when_the_client_asks_for_it(shared: Shared) -> None:
    lines = query_lines(shared, {"version": 2}, headers={"delta-sharing-capabilities": "responseformat=delta"})
    assert lines[0]["protocol"]["deltaProtocol"]["minReaderVersion"] >= 1
    metadata = lines[1]["metaData"]["deltaMetadata"]
    assert [f["name"] for f in json.loads(metadata["schemaString"])["fields"]] == ["id", "name", "amount", "ts"]
    adds = [line["file"]["deltaSingleAction"]["add"] for line in lines[2:]]
    assert len(adds) == 2 and all(a["path"].startswith(shared.server.url) for a in adds)


def test_change_data_feed(tarn: TarnCli, shared: Shared, tmp_path: Path) -> None:
    g = shared.g()
    tarn.run(*g, "create", "main.shop.cdf", "--schema", "id bigint, v string",
             "--property", "delta.enableChangeDataFeed=true")
    tarn.run(*g, "write", "main.shop.cdf", write_csv(tmp_path / "c1.csv", [{"id": i, "v": "a"} for i in range(4)]),
             "--no-progress")
    tarn.run(*g, "delete", "main.shop.cdf", "--where", "id = 1")
    tarn.run(*g, "update", "main.shop.cdf", "--where", "id = 2", "--set", "v = 'b'")
    tarn.run(*g, "share", "add", "partners", "main.shop.cdf", "--as", "sales.cdf", "--history")
    import delta_sharing

    changes = delta_sharing.load_table_changes_as_pandas(f"{shared.profile}#partners.sales.cdf", starting_version=1)
    got = sorted((int(r["id"]), r["v"], r["_change_type"], int(r["_commit_version"])) for r in pandas_rows(changes))
    assert got == sorted([
        (0, "a", "insert", 1), (1, "a", "insert", 1), (2, "a", "insert", 1), (3, "a", "insert", 1),
        (1, "a", "delete", 2),
        (2, "a", "update_preimage", 3), (2, "b", "update_postimage", 3),
    ]), got
    status, _, body = sharing_request(shared, "GET", "/shares/partners/schemas/sales/tables/orders/changes?startingVersion=0")
    assert status == 400 and "change data feed" in error_of(body)["message"], body
