"""Durable jobs and timers: stored in the database, run once, surviving restarts.

``JobQueue`` (``queue``) schedules, replaces, cancels and claims jobs; ``Worker``
(``worker``) runs claimed jobs, each in the transaction that marks it done; ``registry``
maps job kinds to their handlers; ``runner`` builds a node's worker and runs it in a
thread. ``accord worker`` runs one (``accord.cli_jobs``); see docs/operations.md.
"""

from accord.jobs.queue import Job, JobError, JobQueue
from accord.jobs.worker import Handler, Outcome, Worker, default_backoff

__all__ = ["Handler", "Job", "JobError", "JobQueue", "Outcome", "Worker", "default_backoff"]
