"""``accord worker`` and ``accord jobs``, through the real command, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from accord.cli import app
from accord.jobs.queue import JobQueue
from accord.node import Node

runner = CliRunner()


def accord(*args: str | Path, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


def test_worker_once_runs_due_jobs_and_jobs_retry_revives_a_failed_one(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "node"
    args = ["--data", str(data), "--database", database_url]
    accord("init", "--name", "Northwind", *args)
    node = Node.open(data, database=database_url)
    try:
        queue = JobQueue(node.db, now=lambda: datetime.now(UTC))
        past = datetime.now(UTC) - timedelta(minutes=1)
        # a reminder for a callback that is no longer promised: its handler runs, finds
        # nothing to remind of, and the job is done
        gone = {"case": "sha256:" + "0" * 64, "activity": "call", "due": past.isoformat()}
        ping = queue.schedule("callback.remind", past, gone, key="ping")
        lost = queue.schedule("no.such.kind", past, {})
        later = queue.schedule("callback.remind", past + timedelta(days=1), gone)
    finally:
        node.close()

    output = accord("worker", "--once", "--id", "test-worker", *args)
    assert "ran 2 jobs; now 1 pending, 0 running, 1 done, 1 failed, 0 cancelled" in output
    assert "job kinds: callback.missed, callback.remind" in output

    listed = accord("jobs", "list", "--status", "failed", *args)
    assert "no handler for job kind 'no.such.kind'" in listed and str(lost) in listed
    assert f"\n│ {ping} " not in listed and "1 done, 1 failed" in listed
    everything = accord("jobs", "list", *args)
    assert all(str(job_id) in everything for job_id in (ping, lost, later))
    assert "test-worker" in everything

    assert f"job {lost} (no.such.kind) is pending again" in accord(
        "jobs", "retry", str(lost), *args
    )
    assert "only a failed job can be retried" in accord("jobs", "retry", str(lost), *args, code=1)
    assert "there is no job 999" in accord("jobs", "retry", "999", *args, code=1)
