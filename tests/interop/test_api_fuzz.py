"""The HTTP API fuzzed against its own OpenAPI description (`GET /openapi.json`) with
schemathesis: valid, boundary and invalid requests to every operation of the Unity Catalog
API (with an admin token) and of the Delta Sharing protocol (with a recipient's token).

What must hold: no answer is a 5xx, the server never dies, and it still answers a normal
request afterwards. The budget is fixed (`TARN_FUZZ_EXAMPLES` cases per operation and
phase, default 100) and the seed too, so a CI run is repeatable; raise the budget locally to
search harder, e.g. `TARN_FUZZ_EXAMPLES=500 PYTEST_ARGS="-k fuzz" tests/run.sh`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

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
        "--checks", "not_a_server_error",
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
