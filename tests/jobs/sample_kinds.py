"""A module that registers a job kind, as accord.service's modules do (see test_cli.py)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from accord.jobs.queue import Job
from accord.jobs.registry import register
from accord.jobs.worker import Handler
from accord.node import Node

FIRED: list[tuple[str, int]] = []


@register("sample.ping")
def ping(node: Node) -> Handler:
    def handle(job: Job, conn: Connection) -> None:
        FIRED.append((node.name, job.id))

    return handle
