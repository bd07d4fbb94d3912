"""Fixtures of the interop suite: the `tarn` binary under test (from $TARN_BIN), the real
clients that check its tables (python deltalake, DuckDB with its delta extension, polars)
and a local S3 server (moto) for object-storage tests.

Run it through tests/run.sh, which builds the binary and the pinned client venv.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tarn_cli import TarnCli

MOTO_START_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="session")
def tarn() -> TarnCli:
    """The binary under test. A missing binary fails every test that needs it (no skip)."""
    value = os.environ.get("TARN_BIN")
    if not value:
        pytest.fail(
            "TARN_BIN is not set: it must point at the tarn binary under test. "
            "Run the suite with tests/run.sh, which builds it and sets TARN_BIN.",
            pytrace=False,
        )
    binary = Path(value)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"TARN_BIN={value} is not an executable file: build it with `cargo build --bins` "
            "(tests/run.sh does) or fix the path.",
            pytrace=False,
        )
    return TarnCli(binary.resolve())


class DuckDbDelta:
    """A DuckDB connection with the delta extension loaded from its PyPI wheel, offline."""

    def __init__(self, extension_directory: Path) -> None:
        import duckdb
        import duckdb_extension_delta

        extension = (
            Path(duckdb_extension_delta.__path__[0])
            / "extensions"
            / f"v{duckdb.__version__}"
            / "delta.duckdb_extension"
        )
        if not extension.is_file():
            pytest.fail(
                f"no delta extension for DuckDB {duckdb.__version__} at {extension}: "
                "duckdb and duckdb-extension-delta must have the same version",
                pytrace=False,
            )
        self.connection = duckdb.connect(
            config={
                "extension_directory": str(extension_directory),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
        )
        self.connection.execute(f"INSTALL '{extension}'")
        self.connection.execute("LOAD delta")

    def scan(self, table: Path, version: int | None = None) -> list[dict[str, Any]]:
        """`delta_scan` of a local table, at `version` or the latest."""
        uri = Path(table).resolve().as_uri()
        if version is None:
            result = self.connection.execute("SELECT * FROM delta_scan(?)", [uri])
        else:
            result = self.connection.execute("SELECT * FROM delta_scan(?, version => ?)", [uri, version])
        # Through Arrow: fetchall() would need pytz for TIMESTAMP WITH TIME ZONE.
        return result.to_arrow_table().to_pylist()


@pytest.fixture(scope="session")
def duckdb_delta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDbDelta]:
    reader = DuckDbDelta(tmp_path_factory.mktemp("duckdb-extensions"))
    yield reader
    reader.connection.close()


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server with one bucket, and how to reach it."""

    endpoint: str
    bucket: str
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def env(self) -> dict[str, str]:
        """Credentials as environment variables, as a user of tarn would set them."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def tarn_storage_options(self) -> dict[str, str]:
        # No `conditional_put` option: delta-rs 1.x commits to S3 with `If-None-Match: *`
        # by default, and moto honours it.
        return {"aws_endpoint": self.endpoint, "aws_allow_http": "true"}

    def deltalake_storage_options(self) -> dict[str, str]:
        return {
            **self.tarn_storage_options(),
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_region": self.region,
        }

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_server_executable() -> str:
    beside_python = Path(sys.executable).parent / "moto_server"
    found = str(beside_python) if beside_python.exists() else shutil.which("moto_server")
    if not found:
        pytest.fail("moto_server not found: install moto[server] (tests/run.sh does)", pytrace=False)
    return found


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, with an empty bucket."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    endpoint = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [moto_server_executable(), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}:\n{log_path.read_text()}", pytrace=False)
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers: that is all we wait for
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"moto_server did not answer on {endpoint} within {MOTO_START_TIMEOUT_SECONDS} s:\n"
                        f"{log_path.read_text()}",
                        pytrace=False,
                    )
                time.sleep(0.1)
        server = S3Server(endpoint=endpoint, bucket="tarn-interop")
        server.client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def tarn_s3(tarn: TarnCli, s3: S3Server) -> TarnCli:
    """`tarn` with the storage options and credentials that reach the moto server."""
    return tarn.with_storage(s3.tarn_storage_options(), s3.env())
