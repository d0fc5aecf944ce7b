"""Durable jobs and timers: stored in the database, run once, surviving restarts.

``JobQueue`` (``queue``) schedules, replaces, cancels and claims jobs; ``Worker``
(``worker``) runs claimed jobs, each in the transaction that marks it done — a
handler's network call (a ``Deferred``) runs between two short transactions, never
inside one. Which kinds a node runs, and the service method behind each, is listed in
``accord.wiring.Services.handlers``; ``accord worker`` runs that worker
(``accord.cli_jobs``) and ``accord serve`` runs it inline (``inline``); see
docs/operations.md.
"""

from accord.jobs.queue import Job, JobError, JobQueue
from accord.jobs.worker import Deferred, Handler, Outcome, Worker, default_backoff

__all__ = [
    "Deferred",
    "Handler",
    "Job",
    "JobError",
    "JobQueue",
    "Outcome",
    "Worker",
    "default_backoff",
]
