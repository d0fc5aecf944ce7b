"""A node's worker, built from its one set of services (``accord.wiring.Services``), as
``accord worker`` and ``accord serve`` run it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Connection

from accord.jobs.queue import Job
from accord.node import Node
from accord.wiring import Services
from tests.clocks import cheap_passwords

from .conftest import START, Clock


def test_a_nodes_worker_runs_every_kind_on_the_services_of_its_process(
    tmp_path: Path, database_url: str
) -> None:
    node = Node.init(tmp_path / "node", name="Northwind", database=database_url)
    clock = Clock()
    services = Services.build(node, now=clock, passwords=cheap_passwords())
    try:
        worker = services.worker(worker_id="w", lease=timedelta(minutes=1))
        assert (worker.worker_id, worker.batch, worker.lease) == ("w", 20, timedelta(minutes=1))
        assert sorted(worker.handlers) == [
            "callback.missed",
            "callback.remind",
            "channel.send",
            "digest.daily",
            "mail.send",
            "sla.breach",
            "webhook.activity",
            "webhook.deliver",
        ]
        # one of each service: the timers, the outbox and the requests share the queue
        # and the clock, and a callback's reminder goes out through the same mail channel
        assert worker.queue is services.jobs is services.callbacks.queue
        assert services.targets.queue is services.jobs is services.webhooks.queue
        assert services.mail.intake is services.connectors.intake is services.webchat.intake
        assert services.callbacks.on_remind == [services.mail.remind_callback]
        assert ":" in services.worker().worker_id  # host:pid by default

        seen: list[tuple[str, int]] = []

        def ping(job: Job, conn: Connection) -> None:
            seen.append((node.name, job.id))

        pinging = services.worker(worker_id="p", handlers={"ping": ping})
        job_id = pinging.queue.schedule("ping", START, {})
        assert pinging.run_once() == 1
        job = pinging.queue.get(job_id)
        assert job is not None and job.status == "done" and seen == [("Northwind", job_id)]
    finally:
        services.close()
        node.close()
