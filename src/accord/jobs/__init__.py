"""Durable jobs and timers: stored in the database, run once, surviving restarts.

``JobQueue`` (``queue``) schedules, replaces, cancels and claims jobs; ``Worker``
(``worker``) runs claimed jobs, each in the transaction that marks it done; ``registry``
maps job kinds to their handlers. ``accord worker`` runs a worker (``accord.cli_jobs``);
see docs/operations.md.
"""

from accord.jobs.queue import Job, JobError, JobQueue
from accord.jobs.worker import Handler, Outcome, Worker, default_backoff

__all__ = ["Handler", "Job", "JobError", "JobQueue", "Outcome", "Worker", "default_backoff"]
