"""The HTTP API against its own OpenAPI description (`GET /openapi.json`, generated from the
server's wire types and endpoint lists).

Conformance: the document is a valid OpenAPI 3.0 document, and the real answers of the main
routes of every protocol (lists, gets, Delta Sharing's version, metadata and query lines,
Iceberg's config, namespaces, tables and load table, and an error of each) match the schema
the document gives for their status and media type, NDJSON line by line.

Fuzzing: schemathesis sends valid, boundary and invalid requests to every operation of the
Unity Catalog API (with an admin token), of the Delta Sharing protocol (with a recipient's
token) and of the Iceberg REST catalog. What must hold: no answer is a 5xx, every JSON
answer matches the schema documented for its status, the server never dies, and it still
answers a normal request afterwards. The budget is fixed (`TARN_FUZZ_EXAMPLES` cases per
operation and phase, default 100) and the seed too, so a CI run is repeatable; raise the
budget locally to search harder, e.g. `TARN_FUZZ_EXAMPLES=500 PYTEST_ARGS="-k fuzz" tests/run.sh`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_openapi_document

from input_files import write_csv
from tarn_cli import TarnCli
from tarn_server import TarnServer

SEED = 20261202


@pytest.fixture
def served(tarn: TarnCli, tmp_path: Path) -> Iterator[tuple[TarnServer, str, str]]:
    """A served warehouse with a table, a share of it and a recipient; yields the server,
    an admin catalog token and the recipient's token."""
    wh = tmp_path / "wh"
    g = ("--warehouse", str(wh))
    tarn.run(*g, "catalog", "create", "main")
    tarn.run(*g, "schema", "create", "main.shop")
    tarn.run(*g, "create", "main.shop.orders", "--schema", "id bigint not null, customer string, amount decimal(12,2)")
    rows = [{"id": i, "customer": f"c{i}", "amount": f"{i}.50"} for i in range(5)]
    tarn.run(*g, "write", "main.shop.orders", write_csv(tmp_path / "a.csv", rows), "--no-progress")
    tarn.run(*g, "share", "create", "partners")
    tarn.run(*g, "share", "add", "partners", "main.shop.orders", "--as", "sales.orders", "--history")
    admin = tarn.run_json(*g, "token", "create", "fuzzer", "--scope", "admin")["token"]
    server = TarnServer(tarn.binary, *g)
    profile = tmp_path / "fuzz.share"
    tarn.run(*g, "recipient", "create", "fuzz", "--share", "partners", "--expires", "1d",
             "--profile", profile, "--endpoint", server.url + "/delta-sharing")
    recipient = json.loads(profile.read_text())["bearerToken"]
    yield server, admin, recipient
    assert server.stop() == 0, "graceful shutdown on SIGTERM after the fuzzing"


def schemathesis(server: TarnServer, token: str, path_regex: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    examples = os.environ.get("TARN_FUZZ_EXAMPLES", "100")
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", server.url + "/openapi.json",
        "--url", server.url,
        "--checks", "not_a_server_error,response_schema_conformance",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", examples,
        "--seed", str(SEED),
        "--include-path-regex", path_regex,
        "--header", f"Authorization: Bearer {token}",
        "--request-timeout", "30",
        # One worker: with more, hypothesis calls ast.parse from several threads, which
        # CPython 3.11 does not survive ("AST constructor recursion depth mismatch").
        "--workers", "1",
        "--generation-database", "none",
        "--no-color",
    ]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=1200)


def assert_cases_ran(output: str) -> None:
    """schemathesis printed its summary and sent cases that all passed."""
    found = re.search(r"(\d+) generated, (\d+) passed", output)
    assert found, f"no summary of test cases in schemathesis' output:\n{output[-5000:]}"
    generated, passed = int(found.group(1)), int(found.group(2))
    assert generated > 100 and passed == generated, found.group(0)


def assert_alive(server: TarnServer, admin: str) -> None:
    assert server.process.poll() is None, "tarn serve died during the fuzzing"
    with urllib.request.urlopen(server.url + "/health", timeout=10) as r:
        assert r.status == 200
    status, body = server.request("GET", "/api/2.1/unity-catalog/catalogs", token=admin)
    assert status == 200, body


@pytest.mark.timeout(1800)
def test_fuzzed_unity_catalog_api_never_answers_5xx(served: tuple[TarnServer, str, str], tmp_path: Path) -> None:
    server, admin, _ = served
    run = schemathesis(server, admin, r"^/api/", tmp_path)
    assert run.returncode == 0, f"schemathesis found failures:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"
    assert_cases_ran(run.stdout)
    assert_alive(server, admin)


@pytest.mark.timeout(1800)
def test_fuzzed_delta_sharing_api_never_answers_5xx(served: tuple[TarnServer, str, str], tmp_path: Path) -> None:
    server, admin, recipient = served
    run = schemathesis(server, recipient, r"^/delta-sharing/", tmp_path)
    assert run.returncode == 0, f"schemathesis found failures:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"
    assert_cases_ran(run.stdout)
    assert_alive(server, admin)


@pytest.mark.timeout(1800)
def test_fuzzed_iceberg_rest_api_never_answers_5xx(served: tuple[TarnServer, str, str], tmp_path: Path) -> None:
    server, admin, _ = served
    run = schemathesis(server, admin, r"^/iceberg/", tmp_path)
    assert run.returncode == 0, f"schemathesis found failures:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"
    assert_cases_ran(run.stdout)
    assert_alive(server, admin)


def fetch(server: TarnServer, method: str, path: str, token: str | None,
          body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str, bytes, dict[str, str]]:
    """One request: status, media type (without parameters), body and headers."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, answer_headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        status, raw, answer_headers = e.code, e.read(), dict(e.headers)
    answer_headers = {k.lower(): v for k, v in answer_headers.items()}
    media = answer_headers.get("content-type", "").split(";")[0].strip()
    return status, media, raw, answer_headers


def schema_errors(document: dict, schema: dict, instance: Any) -> list[str]:
    """Why `instance` does not match `schema` (whose `$ref`s point into `document`)."""
    validator = OAS30Validator({**document, **schema})
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(instance)]


def nonconformities(document: dict, template: str, method: str, status: int, media: str,
                    raw: bytes, headers: dict[str, str]) -> list[str]:
    """How an answer departs from what the document says of `method template` at `status`."""
    operation = document["paths"][template][method.lower()]
    responses = operation["responses"]
    documented = responses.get(str(status)) or responses.get("default")
    if documented is None:
        return [f"status {status} is not documented"]
    content = documented.get("content", {})
    problems = [f"header {h} missing" for h in documented.get("headers", {}) if h.lower() not in headers]
    if not content:
        return problems + ([f"a body of {len(raw)} bytes where none is documented"] if raw else [])
    if media not in content:
        return problems + [f"media type {media!r}, documented: {sorted(content)}"]
    schema = content[media]["schema"]
    if media == "application/json":
        return problems + schema_errors(document, schema, json.loads(raw))
    assert media == "application/x-ndjson", media
    lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    if not lines:
        problems.append("no lines")
    for n, line in enumerate(lines):
        problems += [f"line {n + 1} {next(iter(line), '')}: {e}" for e in schema_errors(document, schema, line)]
    return problems


UC = "/api/2.1/unity-catalog"
DS = "/delta-sharing/shares"
DS_TABLE = DS + "/{share}/schemas/{schema}/tables/{table}"
IB = "/iceberg/v1"
IB_NAMESPACE = IB + "/{prefix}/namespaces/{namespace}"
DELTA_FORMAT = {"delta-sharing-capabilities": "responseformat=delta"}

# (token, method, route in the document, concrete path, body, request headers, status expected)
CONFORMANCE_CASES: list[tuple[str, str, str, str, Any, dict[str, str], int]] = [
    ("admin", "GET", UC + "/catalogs", UC + "/catalogs", None, {}, 200),
    ("admin", "GET", UC + "/catalogs/{name}", UC + "/catalogs/main", None, {}, 200),
    ("admin", "GET", UC + "/schemas", UC + "/schemas?catalog_name=main", None, {}, 200),
    ("admin", "GET", UC + "/schemas/{full_name}", UC + "/schemas/main.shop", None, {}, 200),
    ("admin", "GET", UC + "/tables", UC + "/tables?catalog_name=main&schema_name=shop", None, {}, 200),
    ("admin", "GET", UC + "/tables/{full_name}", UC + "/tables/main.shop.orders", None, {}, 200),
    ("admin", "GET", UC + "/tables/{full_name}", UC + "/tables/main.shop.missing", None, {}, 404),
    ("admin", "POST", UC + "/temporary-table-credentials", UC + "/temporary-table-credentials",
     "TABLE_ID", {}, 200),
    ("admin", "GET", "/api/2.0/settings/types/default_namespace_ws/names/default",
     "/api/2.0/settings/types/default_namespace_ws/names/default", None, {}, 200),
    ("recipient", "GET", DS, DS, None, {}, 200),
    ("recipient", "GET", DS + "/{share}", DS + "/partners", None, {}, 200),
    ("recipient", "GET", DS + "/{share}", DS + "/missing", None, {}, 404),
    ("recipient", "GET", DS + "/{share}/schemas", DS + "/partners/schemas", None, {}, 200),
    ("recipient", "GET", DS + "/{share}/schemas/{schema}/tables", DS + "/partners/schemas/sales/tables", None, {}, 200),
    ("recipient", "GET", DS + "/{share}/all-tables", DS + "/partners/all-tables", None, {}, 200),
    ("recipient", "GET", DS_TABLE + "/version", DS + "/partners/schemas/sales/tables/orders/version", None, {}, 200),
    ("recipient", "GET", DS_TABLE + "/metadata", DS + "/partners/schemas/sales/tables/orders/metadata", None, {}, 200),
    ("recipient", "GET", DS_TABLE + "/metadata", DS + "/partners/schemas/sales/tables/orders/metadata", None,
     DELTA_FORMAT, 200),
    ("recipient", "POST", DS_TABLE + "/query", DS + "/partners/schemas/sales/tables/orders/query", {}, {}, 200),
    ("recipient", "POST", DS_TABLE + "/query", DS + "/partners/schemas/sales/tables/orders/query", {},
     DELTA_FORMAT, 200),
    ("recipient", "POST", DS_TABLE + "/query", DS + "/partners/schemas/sales/tables/orders/query",
     {"startingVersion": 0}, {}, 200),
    ("recipient", "POST", DS_TABLE + "/query", DS + "/partners/schemas/sales/tables/orders/query",
     {"maxFiles": 1}, {}, 200),
    ("admin", "GET", IB + "/config", IB + "/config?warehouse=main", None, {}, 200),
    ("admin", "GET", IB + "/{prefix}/namespaces", IB + "/main/namespaces", None, {}, 200),
    ("admin", "GET", IB_NAMESPACE, IB + "/main/namespaces/shop", None, {}, 200),
    ("admin", "GET", IB_NAMESPACE + "/tables", IB + "/main/namespaces/shop/tables", None, {}, 200),
    ("admin", "GET", IB_NAMESPACE + "/tables/{table}", IB + "/main/namespaces/shop/tables/orders", None, {}, 200),
    ("admin", "GET", IB_NAMESPACE + "/tables/{table}", IB + "/main/namespaces/shop/tables/missing", None, {}, 404),
    (None, "GET", "/health", "/health", None, {}, 200),
    (None, "GET", "/openapi.json", "/openapi.json", None, {}, 200),
]


def test_served_answers_conform_to_the_openapi_document(served: tuple[TarnServer, str, str]) -> None:
    server, admin, recipient = served
    status, _, raw, _ = fetch(server, "GET", "/openapi.json", None)
    assert status == 200
    document = json.loads(raw)
    validate_openapi_document(document)
    table_id = server.request("GET", UC + "/tables/main.shop.orders", token=admin)[1]["table_id"]
    tokens = {"admin": admin, "recipient": recipient, None: None}
    failures = []
    for who, method, template, path, body, headers, expected in CONFORMANCE_CASES:
        if body == "TABLE_ID":
            body = {"table_id": table_id, "operation": "READ"}
        status, media, raw, answer_headers = fetch(server, method, path, tokens[who], body, headers)
        label = f"{method} {path} {headers or ''}"
        if status != expected:
            failures.append(f"{label}: status {status}, expected {expected}: {raw[:300]!r}")
            continue
        failures += [f"{label}: {p}" for p in nonconformities(document, template, method, status, media, raw,
                                                                answer_headers)]
    assert not failures, "answers that do not match the document:\n" + "\n".join(failures)


def test_the_conformance_check_rejects_an_answer_off_the_document(served: tuple[TarnServer, str, str]) -> None:
    """The check above can fail: answers changed the ways a server could get them wrong do not pass."""
    server, admin, recipient = served
    document = json.loads(fetch(server, "GET", "/openapi.json", None)[2])
    status, media, raw, headers = fetch(server, "GET", UC + "/tables/main.shop.orders", admin)
    assert status == 200 and not nonconformities(document, UC + "/tables/{full_name}", "GET", status, media, raw,
                                                 headers)
    table = json.loads(raw)
    for broken in ({**table, "name": 7}, {k: v for k, v in table.items() if k != "table_id"},
                   {**table, "columns": [{"name": "id"}]}):
        assert nonconformities(document, UC + "/tables/{full_name}", "GET", 200, media, json.dumps(broken).encode(),
                               headers), broken
    assert nonconformities(document, UC + "/tables/{full_name}", "GET", 404, media, raw, headers), \
        "a table where the error body is documented"
    path = DS + "/partners/schemas/sales/tables/orders/metadata"
    status, media, raw, headers = fetch(server, "GET", path, recipient)
    template = DS_TABLE + "/metadata"
    assert status == 200 and not nonconformities(document, template, "GET", status, media, raw, headers)
    assert nonconformities(document, template, "GET", status, media, raw + b'{"metaData": {"id": 1}}\n', headers)
    assert nonconformities(document, template, "GET", status, media, raw, {}), "the version header is documented"
