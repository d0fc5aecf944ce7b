"""Prometheus metrics at ``/metrics``.

Per-process counters and latency histograms of HTTP requests (``prometheus_client``, the
reference implementation; in multi-process mode when ``accord serve --workers`` sets
``PROMETHEUS_MULTIPROC_DIR``, so any process answers for all), and, read from the database
when scraped — so every process gives the same answer — the state of the work: messages
in by channel and status, the outbox, due and failed jobs and how late the oldest due one
is (timer lag), cases open and resolved, and how long since each peer last synced.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from accord.jobs.follow import marks
from accord.store.database import Database
from accord.store.tables import cases, channel_messages, jobs, peer_sync

REQUESTS = Counter("accord_http_requests", "HTTP requests served", ["method", "route", "status"])
LATENCY = Histogram(
    "accord_http_request_duration_seconds",
    "Time to serve an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class WorkCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        inbound = GaugeMetricFamily(
            "accord_inbound_messages",
            "Messages received, by channel and outcome",
            labels=["channel", "status"],
        )
        outbox = GaugeMetricFamily(
            "accord_outbox_depth", "Outbound messages waiting to be sent", labels=["channel"]
        )
        failed_out = GaugeMetricFamily(
            "accord_outbound_failed", "Outbound messages that failed or bounced", labels=["channel"]
        )
        due = GaugeMetricFamily("accord_jobs_due", "Jobs due now and not yet run", labels=["kind"])
        failed = GaugeMetricFamily(
            "accord_jobs_failed", "Jobs that failed for good", labels=["kind"]
        )
        lag = GaugeMetricFamily(
            "accord_timer_lag_seconds", "How late the oldest due job is (0: none is late)"
        )
        open_cases = GaugeMetricFamily("accord_cases", "Cases held", labels=["state"])
        sync = GaugeMetricFamily(
            "accord_peer_sync_age_seconds",
            "Seconds since the last successful sync with each peer (oldest of its cases)",
            labels=["peer"],
        )
        behind = GaugeMetricFamily(
            "accord_follower_lag_events",
            "Log positions each follower of the case log has yet to read",
            labels=["follower"],
        )
        failing = GaugeMetricFamily(
            "accord_follower_failures",
            "Failed attempts in a row of each follower (0: it is keeping up)",
            labels=["follower"],
        )
        with self.db.read() as conn:
            for mark in marks(conn):
                behind.add_metric([mark.name], mark.behind)
                failing.add_metric([mark.name], mark.failures)
            m = channel_messages.c
            for channel, direction, status, count in conn.execute(
                sa.select(m.channel, m.direction, m.status, sa.func.count()).group_by(
                    m.channel, m.direction, m.status
                )
            ):
                if direction == "in":
                    inbound.add_metric([channel, status], count)
                elif status == "queued":
                    outbox.add_metric([channel], count)
                elif status in ("failed", "bounced"):
                    failed_out.add_metric([channel], count)
            oldest = None
            for kind, status, count, first in conn.execute(
                sa.select(jobs.c.kind, jobs.c.status, sa.func.count(), sa.func.min(jobs.c.run_at))
                .where(
                    sa.or_(
                        sa.and_(jobs.c.status == "pending", jobs.c.run_at <= now),
                        jobs.c.status == "failed",
                    )
                )
                .group_by(jobs.c.kind, jobs.c.status)
            ):
                if status == "pending":
                    due.add_metric([kind], count)
                    first = _aware(first)
                    oldest = first if oldest is None or first < oldest else oldest
                else:
                    failed.add_metric([kind], count)
            lag.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            for resolved, count in conn.execute(
                sa.select(cases.c.resolved, sa.func.count()).group_by(cases.c.resolved)
            ):
                open_cases.add_metric(["resolved" if resolved else "open"], count)
            for peer, last in conn.execute(
                sa.select(peer_sync.c.peer, sa.func.min(peer_sync.c.last_sync_at)).group_by(
                    peer_sync.c.peer
                )
            ):
                if last is not None:
                    sync.add_metric([peer], (now - _aware(last)).total_seconds())
        yield from (
            inbound,
            outbox,
            failed_out,
            due,
            failed,
            lag,
            open_cases,
            sync,
            behind,
            failing,
        )
        yield from _replica(self.db)


REPLICA_STATES = ("serving", "behind", "primary", "down")


def _replica(db: Database) -> Iterator[Metric]:
    """The read replica's gauges, when the node has one (``Database.replica_status``)."""
    status = db.replica_status()
    if status is None:
        return
    state = GaugeMetricFamily(
        "accord_replica_state",
        "The read replica's state, 1 for the current one: serving (it may serve reads), "
        "behind (beyond the lag bound: reads go to the primary), primary (not a standby), "
        "down (out of reach)",
        labels=["state"],
    )
    for name in REPLICA_STATES:
        state.add_metric([name], 1 if status.state == name else 0)
    yield state
    if status.lag_seconds is not None:
        yield GaugeMetricFamily(
            "accord_replica_lag_seconds",
            "0 when the replica has replayed all the primary wrote, else the age of the "
            "last transaction it replayed",
            value=status.lag_seconds,
        )
    if status.behind_bytes is not None:
        yield GaugeMetricFamily(
            "accord_replica_behind_bytes",
            "Bytes of WAL the replica has yet to replay",
            value=status.behind_bytes,
        )


def render(db: Database) -> bytes:
    """The exposition text: this process's (or all processes') HTTP metrics and the work."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(WorkCollector(db))
    return generate_latest(registry)


def observe(method: str, route: str, status: int, started: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(time.perf_counter() - started)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
