"""``--database-read`` on the command line: ``accord export`` reads a real PostgreSQL
streaming replica when given one (``tests/replica.py``), and a read URL beside SQLite is
refused with what to do."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from accord.cli import app
from accord.store.database import ENV_READ_MAX_LAG
from tests.replica import Replicated

runner = CliRunner()


def accord(*args: str | Path, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.postgres
def test_export_reads_the_replica_it_is_given(
    tmp_path: Path, replicated: Replicated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_READ_MAX_LAG, "3600")  # a bound no test run comes near
    node = ["--data", str(tmp_path / "node"), "--database", replicated.url]
    accord("init", "--name", "Northwind Broadband", *node)
    case_id = accord("case", "new", "Broadband contract", "--customer", "Priya", *node).strip()
    replicated.replica.catch_up()
    replicated.replica.pause()
    accord("case", "post", case_id, "Your case is owned by Tom Baker.", *node)

    def exported(*extra: str) -> int:
        bundle = tmp_path / "case.jsonl"
        accord("export", case_id, "-o", bundle, *node, *extra)
        report = orjson.loads(accord("verify", bundle, "--json"))
        assert report["ok"], report
        return int(report["events"])

    # a command acts for no member: the replica, behind within the bound, serves it
    assert exported("--database-read", replicated.read_url) == 1
    assert exported() == 2  # no read URL: the primary
    replicated.replica.resume()
    replicated.replica.catch_up()
    assert exported("--database-read", replicated.read_url) == 2


def test_a_read_url_beside_sqlite_is_refused(tmp_path: Path) -> None:
    node = ["--data", str(tmp_path / "node")]
    accord("init", *node)
    output = accord(
        "case", "list", *node, "--database-read", "postgresql://reader@10.0.0.2/accord", code=1
    )
    assert "read replica" in output and "PostgreSQL" in output
