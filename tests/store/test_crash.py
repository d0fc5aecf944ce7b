"""A process killed in the middle of appending leaves the store consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from accord.store import migrate
from accord.store.cases import CaseStore
from accord.store.database import Database

WRITER = textwrap.dedent(
    """
    import sys
    from accord.core.crypto import NodeKey
    from accord.store.cases import CaseStore
    from accord.store.database import Database

    key = NodeKey(b"crash-writer".ljust(32, b"\\0"))
    store = CaseStore(Database(sys.argv[1]))
    party = {"id": "n", "name": "N", "kind": "organisation", "node": key.public}
    for case in range(1000):
        opened = store.create(key, None, "case.opened",
                              {"title": f"case {case}", "nonce": str(case), "parties": [party]},
                              member="writer")
        print(opened.case, flush=True)
        for _ in range(1000):
            store.create_many(key, opened.case, [("message.posted", {"text": "x" * 500})] * 20,
                              member="writer")
            print("batch", flush=True)
    """
)


def test_kill_during_appends_leaves_every_case_consistent(database_url: str) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    store = CaseStore(db)
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for _ in range(10):  # ten batches committed: appends are well under way
            assert proc.stdout.readline(), "the writer stopped early"
        os.kill(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, stderr

    for row in store.list_cases(limit=1000):
        events = store.events(row.case_id, verify=True)
        state = store.state(row.case_id)
        assert state is not None and state["events"] == len(events) == row.event_count
        assert (len(events) - 1) % 20 == 0  # whole batches only: nothing half-written
        assert state == store.refold(row.case_id)
    db.dispose()
