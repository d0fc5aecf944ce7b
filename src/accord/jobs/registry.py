"""Which job kinds exist: each kind's handler factory, registered by the module that owns it.

A module that owns a kind of job registers a *factory*: given the ``Node`` a worker runs
for, it returns the handler (``accord.jobs.worker.Handler``) for that kind::

    from accord.jobs.registry import register

    @register("reminder")
    def reminder_handler(node: Node) -> Handler:
        service = Ownership(node, ...)            # built once per worker
        def handle(job: Job, conn: Connection) -> None:
            service.send_reminder(conn, job.payload["case"], ...)
        return handle

and adds its module's name to ``HANDLER_MODULES`` below, so that ``handlers()`` imports
it (and so registers its kinds) before building the handlers. ``accord worker`` and the
worker ``accord serve`` runs inline both get theirs from ``handlers(node)``, through
``accord.jobs.runner.node_worker``. A kind is registered
once; registering another factory under a taken kind raises ``ValueError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from accord.jobs.worker import Handler

if TYPE_CHECKING:
    from accord.node import Node

HandlerFactory = Callable[["Node"], Handler]

REGISTRY: dict[str, HandlerFactory] = {}
"""Job kind → the factory building its handler for a node."""

HANDLER_MODULES: list[str] = [
    "accord.service.callbacks",
    "accord.service.sla",
    "accord.service.digest",
    "accord.integrations.webhooks",
    "accord.channels.email.build",
    "accord.channels.connectors.service",
]
"""Modules that register job kinds, imported by ``handlers()``: ``"accord.service.…"``."""


def register(kind: str) -> Callable[[HandlerFactory], HandlerFactory]:
    """Decorator: ``factory`` builds the handler of jobs of ``kind``."""

    def decorate(factory: HandlerFactory) -> HandlerFactory:
        held = REGISTRY.get(kind)
        if held is not None and held is not factory:
            raise ValueError(f"job kind {kind!r} is already registered by {held.__module__}")
        REGISTRY[kind] = factory
        return factory

    return decorate


def handlers(node: Node) -> dict[str, Handler]:
    """Import every module in ``HANDLER_MODULES``, then build every registered handler."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
    return {kind: factory(node) for kind, factory in sorted(REGISTRY.items())}
