"""A `tarn serve` process for tests: started on a free loopback port, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class TarnServer:
    """`tarn serve --bind 127.0.0.1:0` with the given global options; `.url` once it listens."""

    def __init__(
        self, binary: Path, *global_args: str, extra: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.process = subprocess.Popen(
            [str(binary), *global_args, "serve", "--bind", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if "http://" not in first:
            self.process.kill()
            raise AssertionError(f"tarn serve did not start: {first!r} {self.process.stderr.read() if self.process.stderr else ''}")
        self.banner = first
        self.url = first.split("http://", 1)[1].split()[0]
        self.url = "http://" + self.url
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise AssertionError("tarn serve never answered /health")

    def request(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self) -> int:
        """SIGTERM, then wait: a graceful shutdown exits 0."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
