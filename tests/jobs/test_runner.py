"""A node's worker in a background thread, as ``accord serve`` runs it inline."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from accord.jobs import registry
from accord.jobs.queue import Job
from accord.jobs.runner import WorkerThread, node_worker
from accord.jobs.worker import Handler
from accord.node import Node

from .conftest import START, Clock


def test_an_inline_worker_runs_due_jobs_until_stopped(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fired = threading.Event()
    seen: list[tuple[str, int]] = []

    def factory(node: Node) -> Handler:
        def handle(job: Job, conn: Connection) -> None:
            seen.append((node.name, job.id))
            fired.set()

        return handle

    monkeypatch.setattr(registry, "REGISTRY", {"ping": factory})
    monkeypatch.setattr(registry, "HANDLER_MODULES", [])
    node = Node.init(tmp_path / "node", name="Inline", database=database_url)
    try:
        clock = Clock()
        worker = node_worker(node, worker_id="serve", lease=timedelta(minutes=1), now=clock)
        assert (worker.worker_id, worker.batch, list(worker.handlers)) == ("serve", 20, ["ping"])
        job_id = worker.queue.schedule("ping", START, {})
        inline = WorkerThread(worker, idle=0.01)
        inline.start()
        assert fired.wait(timeout=30)
        inline.stop()
        assert not inline.running
        job = worker.queue.get(job_id)
        assert job is not None and job.status == "done" and seen == [("Inline", job_id)]
    finally:
        node.close()
