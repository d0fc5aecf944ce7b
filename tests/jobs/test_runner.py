"""``node_worker``: a node's worker with every registered handler, as ``accord worker`` runs it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from accord.jobs import registry
from accord.jobs.queue import Job
from accord.jobs.runner import node_worker
from accord.jobs.worker import Handler
from accord.node import Node

from .conftest import START, Clock


def test_a_nodes_worker_runs_the_registered_handlers(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []

    def factory(node: Node) -> Handler:
        def handle(job: Job, conn: Connection) -> None:
            seen.append((node.name, job.id))

        return handle

    monkeypatch.setattr(registry, "REGISTRY", {"ping": factory})
    monkeypatch.setattr(registry, "HANDLER_MODULES", [])
    node = Node.init(tmp_path / "node", name="Northwind", database=database_url)
    try:
        clock = Clock()
        worker = node_worker(node, worker_id="w", lease=timedelta(minutes=1), now=clock)
        assert (worker.worker_id, worker.batch, list(worker.handlers)) == ("w", 20, ["ping"])
        assert worker.lease == timedelta(minutes=1)
        job_id = worker.queue.schedule("ping", START, {})
        assert worker.run_once() == 1
        job = worker.queue.get(job_id)
        assert job is not None and job.status == "done" and seen == [("Northwind", job_id)]
        assert ":" in node_worker(node).worker_id  # host:pid by default
    finally:
        node.close()
