"""Runs the `tarn` binary under test and parses its `--format json` output.

Every call fails the test with the command line, exit code, stdout and stderr when the
binary does not do what the contract says, so a failure report shows what tarn printed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

# A debug build on 2 cores: generous, but a hung process still fails the test.
TARN_TIMEOUT_SECONDS = 120


class TarnCli:
    """The `tarn` binary, with the storage options and environment every call gets."""

    def __init__(
        self,
        binary: Path,
        storage_options: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = Path(binary)
        self.storage_options = dict(storage_options or {})
        self.extra_env = dict(env or {})

    def with_storage(self, storage_options: Mapping[str, str], env: Mapping[str, str]) -> TarnCli:
        """The same binary, talking to an object store (e.g. the moto S3 server)."""
        return TarnCli(self.binary, {**self.storage_options, **storage_options}, {**self.extra_env, **env})

    # --- raw runs ----------------------------------------------------------------------

    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        cmd = [str(self.binary), "--format", "json"]
        for key, value in self.storage_options.items():
            cmd += ["--storage-option", f"{key}={value}"]
        return cmd + [str(a) for a in args]

    def environment(self) -> dict[str, str]:
        # Hermetic: no AWS settings of the machine leak in; no colours or progress bars.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "TARN_FORMAT"}
        env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        return env

    def run(self, *args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs `tarn --format json [storage options] ARGS...`; with check, exit 0 is required."""
        cmd = self.command(*args)
        try:
            proc = subprocess.run(
                cmd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TARN_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"`{' '.join(cmd)}` did not finish in {TARN_TIMEOUT_SECONDS} s") from e
        if check and proc.returncode != 0:
            raise AssertionError(describe(proc, "exited with a failure"))
        return proc

    def run_json(self, *args: str | os.PathLike[str]) -> Any:
        """Runs a command that must succeed and print one JSON document on stdout."""
        proc = self.run(*args)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(describe(proc, f"printed no valid JSON on stdout ({e})")) from e

    def fails(self, *args: str | os.PathLike[str]) -> str:
        """Runs a command that must fail: non-zero exit and exactly one line on stderr.

        Returns that line.
        """
        proc = self.run(*args, check=False)
        assert proc.returncode != 0, describe(proc, "succeeded but should have failed")
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, describe(proc, f"should print one error line on stderr, printed {len(lines)}")
        return lines[0]

    # --- subcommands -------------------------------------------------------------------

    def create(self, table: str | os.PathLike[str], schema: str, *extra: str) -> None:
        self.run("create", table, "--schema", schema, *extra)

    def write(
        self,
        table: str | os.PathLike[str],
        *files: str | os.PathLike[str],
        mode: str | None = None,
        merge_schema: bool = False,
        create: bool = False,
    ) -> dict[str, Any]:
        """`tarn write`; returns its report, which must hold integer `version` and `rows`."""
        args: list[str | os.PathLike[str]] = ["write", table, *files, "--no-progress"]
        if mode:
            args += ["--mode", mode]
        if merge_schema:
            args.append("--merge-schema")
        if create:
            args.append("--create")
        report = self.run_json(*args)
        assert isinstance(report, dict), f"`tarn write` should print one JSON object, printed {report!r}"
        for key in ("version", "rows"):
            assert isinstance(report.get(key), int), f"`tarn write` report lacks an integer `{key}`: {report!r}"
        return report

    def query(
        self,
        sql: str,
        tables: Mapping[str, str | os.PathLike[str]],
        version: int | None = None,
        as_of: str | None = None,
    ) -> list[dict[str, Any]]:
        """`tarn query`; returns the rows, which must be a JSON array of objects."""
        args: list[str | os.PathLike[str]] = ["query", sql]
        for name, table in tables.items():
            args += ["--table", f"{name}={table}"]
        if version is not None:
            args += ["--version", str(version)]
        if as_of is not None:
            args += ["--as-of", as_of]
        rows = self.run_json(*args)
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows), (
            f"`tarn query` should print a JSON array of row objects, printed {rows!r}"
        )
        return rows

    def history(self, table: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """`tarn history` (all commits, in the order printed); checks each entry's fields."""
        commits = self.run_json("history", table, "--limit", "100000")
        assert isinstance(commits, list), f"`tarn history` should print a JSON array, printed {commits!r}"
        for commit in commits:
            assert isinstance(commit, dict) and isinstance(commit.get("version"), int), (
                f"history entry without an integer `version`: {commit!r}"
            )
            assert commit.get("timestamp") is not None, f"history entry without `timestamp`: {commit!r}"
            assert isinstance(commit.get("operation"), str) and commit["operation"], (
                f"history entry without `operation`: {commit!r}"
            )
        return commits


def describe(proc: subprocess.CompletedProcess[str], what: str) -> str:
    return (
        f"`{' '.join(proc.args)}` {what} (exit {proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )

