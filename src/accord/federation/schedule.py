"""Pull from peers on a schedule, in a background thread of ``accord serve``.

Pushes follow the log and are retried until acknowledged (``accord.federation.push``);
these rounds are the safety net for what no push could bring: a peer that was refused,
a node that was down. A round compares heads with each peer a page of cases at a time and
pulls only the cases that are behind (``Federation.sync``). The first round runs soon
after start, so a node back from a stop catches up at once. Each peer's backoff after
failures (``peer_sync.next_attempt_at``) is respected.
"""

from __future__ import annotations

import logging
import threading

from accord.federation.sync import Federation

log = logging.getLogger("accord.sync")


class PeriodicSync:
    def __init__(self, federation: Federation, interval: float, *, first: float = 2.0) -> None:
        self.federation = federation
        self.interval = interval
        self.first = min(first, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accord-sync", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> None:
        """One round over every case and peer; failures are recorded, never raised."""
        try:
            for result in self.federation.sync():
                if result.error:
                    log.warning(
                        "sync of %s from %s failed: %s",
                        result.case_id[:19],
                        result.peer[:19],
                        result.error,
                    )
        except Exception:  # a broken round must not end the schedule
            log.exception("periodic sync round failed")

    def _run(self) -> None:
        wait = self.first
        while not self._stop.wait(wait):
            self.run_once()
            wait = self.interval
