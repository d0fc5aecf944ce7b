"""Three real nodes — supplier, business customer, subcontractor — negotiate one case and
end with byte-identical copies by pushes alone; a node killed while 2,500 messages are
posted catches up once it is back, without a manual sync; a node that was down catches
up; a sync cut short by a killed peer loses and duplicates nothing.

The nodes are made in-process (a node, a member and a token each) and served by real
``accord serve`` processes; the CLI is used where the test is about the CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from accord.auth.members import MemberStore
from accord.auth.tokens import TokenStore
from accord.core.crypto import fingerprint
from accord.node import Node
from accord.store.tables import events as events_table

from ..clocks import TickingClock, cheap_passwords
from ..servers import free_port, running_node

pytestmark = pytest.mark.slow


def cli(data: Path, *args: str, stdin: str | None = None, code: int = 0) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "accord", *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == code, (args, result.stdout, result.stderr)
    return result.stdout.strip() if code == 0 else result.stdout + result.stderr


@dataclass
class Peer:
    name: str
    data: Path
    port: int
    token: str
    node: Node  # the node's store, read from the test's process (SQLite, WAL)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def hash(self, case_id: str) -> str | None:
        return self.node.cases.state_hash(case_id)


def make_peer(tmp_path: Path, name: str) -> Peer:
    """A node with a public URL, an agent and an API token, made in-process (what
    ``accord init``, ``member add`` and ``token create`` do, without three processes)."""
    data = tmp_path / name.lower().split()[0]
    port = free_port()
    node = Node.init(data, name=name, url=f"http://127.0.0.1:{port}")
    members = MemberStore(node.db, passwords=cheap_passwords(), now=TickingClock())
    agent = members.create(
        "agent", "correct horse battery staple", role="agent", display_name=f"{name} agent"
    )
    token = TokenStore(node.db, now=TickingClock()).create(
        agent.id, "e2e", ["cases:read", "cases:write"]
    )
    return Peer(name, data, port, token.token, node)


def northwind_events(peer: Peer, case_id: str) -> list[str]:
    return cli(peer.data, "case", "log", case_id, "--json").splitlines()


def held_events(peer: Peer, case_id: str) -> int:
    with peer.node.db.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(events_table.c.case_id == case_id)
            ).scalar_one()
        )


def eventually(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Wait for a condition that another process brings about (pushes are asynchronous)."""
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    pause = threading.Event()
    while not check():
        if datetime.now(UTC) > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.05)


def future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:00:00Z")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@contextlib.contextmanager
def serving(*peers: Peer) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for peer in peers:
            stack.enter_context(running_node(peer.data, port=peer.port))
        yield


def view(peer: Peer, case_id: str) -> Any:
    return httpx.get(f"{peer.url}/api/v1/cases/{case_id}", headers=peer.auth, timeout=10).json()


def test_three_nodes_negotiate_and_converge(tmp_path: Path) -> None:
    northwind = make_peer(tmp_path, "Northwind Broadband")
    contoso = make_peer(tmp_path, "Contoso Ltd")
    fibrefix = make_peer(tmp_path, "Fibrefix")
    nw, co, fx = "northwind-broadband", "contoso-ltd", "fibrefix"

    with serving(northwind, contoso, fibrefix), httpx.Client(timeout=10) as http:
        case_id = ok(
            http.post(
                f"{northwind.url}/api/v1/cases",
                headers=northwind.auth,
                json={
                    "title": "Office line down",
                    "topics": [{"topic": "repair", "title": "Repair"}],
                },
            ),
            201,
        )["case"]
        base = f"/api/v1/cases/{case_id}"

        # Contoso joins: Northwind is the only party, so the join is agreed at once
        link = ok(
            http.post(f"{northwind.url}{base}/invites", headers=northwind.auth, json={"hours": 2}),
            201,
        )["link"]
        assert "now the party" in cli(contoso.data, "join", link)
        reused = cli(fibrefix.data, "join", link, code=1)
        assert "already been used" in reused

        # Fibrefix joins: Contoso, a party with its own node, must accept
        link = ok(
            http.post(f"{northwind.url}{base}/invites", headers=northwind.auth, json={}), 201
        )["link"]
        assert "once the other parties accept" in cli(fibrefix.data, "join", link)
        eventually(
            lambda: bool(view(contoso, case_id)["open_proposals"]),
            "the proposal to add Fibrefix to reach Contoso by push",
        )
        proposal = next(iter(view(contoso, case_id)["open_proposals"]))
        ok(http.post(f"{contoso.url}{base}/proposals/{proposal}/accept", headers=contoso.auth))
        eventually(
            lambda: fx in view(northwind, case_id)["parties"],
            "Contoso's acceptance to reach Northwind",
        )
        eventually(  # by push: no `accord sync`
            lambda: fx in view(fibrefix, case_id)["parties"],
            "Contoso's acceptance to reach Fibrefix",
        )

        # the negotiation, each party acting on its own node
        said = view(northwind, case_id)["messages"]  # the owner's introduction so far
        ok(
            http.post(
                f"{contoso.url}{base}/messages",
                headers=contoso.auth,
                json={"text": "Our office line is down since Monday."},
            ),
            201,
        )
        eventually(lambda: view(northwind, case_id)["messages"] == said + 1, "Contoso's message")
        plan = ok(
            http.post(
                f"{northwind.url}{base}/proposals",
                headers=northwind.auth,
                json={
                    "changes": [
                        {
                            "op": "activity.put",
                            "activity": "visit",
                            "title": "Visit the cabinet",
                            "owner": fx,
                            "kind": "task",
                            "due": future(3),
                        },
                        {
                            "op": "activity.put",
                            "activity": "access",
                            "title": "Give site access",
                            "owner": co,
                            "kind": "task",
                            "due": future(2),
                        },
                        {
                            "op": "data.put",
                            "key": "credit",
                            "value": {
                                "type": "money",
                                "amount": "10.00",
                                "currency": "GBP",
                                "per": "once",
                            },
                        },
                    ]
                },
            ),
            201,
        )["events"][0]
        for peer in (contoso, fibrefix):
            eventually(
                lambda p=peer: plan in view(p, case_id)["open_proposals"],
                f"the plan to reach {peer.name}",
            )
            ok(http.post(f"{peer.url}{base}/proposals/{plan}/accept", headers=peer.auth))
        eventually(
            lambda: view(northwind, case_id)["agreement"]["proposal"] == plan,
            "both acceptances to reach Northwind",
        )
        agreement = view(northwind, case_id)["agreement"]
        assert set(agreement["acceptances"]) == {nw, co, fx}
        eventually(
            lambda: view(fibrefix, case_id)["agreement"]["proposal"] == plan,
            "the agreement on Fibrefix's node",
        )
        ok(
            http.post(
                f"{fibrefix.url}{base}/activities/visit/progress",
                headers=fibrefix.auth,
                json={"state": "done", "note": "Cabinet repaired"},
            )
        )
        refused = http.post(
            f"{contoso.url}{base}/activities/visit/progress",
            headers=contoso.auth,
            json={"state": "done"},
        )
        assert refused.status_code == 403

        everyone = (northwind, contoso, fibrefix)
        eventually(  # pushes are retried until acknowledged: no `accord sync`
            lambda: len({peer.hash(case_id) for peer in everyone}) == 1,
            "the three copies to converge",
        )
        hashes = {peer.name: peer.hash(case_id) for peer in everyone}
        state = view(contoso, case_id)
        assert state["activities"]["done"][0]["activity"] == "visit"
        assert state["evidence"] == [] and state["equivocations"] == []
        peers = cli(contoso.data, "peers")
        assert "127.0.0.1" in peers
        assert "Traceback" not in peers

    # an export verifies offline to the same state hash as the live nodes
    bundle = tmp_path / "fibrefix-copy.jsonl"
    cli(fibrefix.data, "export", case_id, "-o", str(bundle))
    report = subprocess.run(
        [sys.executable, "-m", "accord", "verify", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0 and str(hashes["Fibrefix"]) in report.stdout


def test_a_stopped_node_catches_up_and_a_cut_sync_loses_nothing(tmp_path: Path) -> None:
    northwind = make_peer(tmp_path, "Northwind Broadband")
    contoso = make_peer(tmp_path, "Contoso Ltd")
    http = httpx.Client(timeout=10)
    with serving(northwind, contoso):
        case_id = ok(
            http.post(
                f"{northwind.url}/api/v1/cases",
                headers=northwind.auth,
                json={"title": "Billing dispute"},
            ),
            201,
        )["case"]
        link = ok(
            http.post(
                f"{northwind.url}/api/v1/cases/{case_id}/invites", headers=northwind.auth, json={}
            ),
            201,
        )["link"]
        cli(contoso.data, "join", link)

    # Contoso is down; Northwind keeps working on its copy
    with serving(northwind):
        for i in range(30):
            ok(
                http.post(
                    f"{northwind.url}/api/v1/cases/{case_id}/messages",
                    headers=northwind.auth,
                    json={"text": f"update {i}"},
                ),
                201,
            )
    # a large backlog, written straight into Northwind's store
    script = (
        "import sys\nfrom accord.node import Node\nfrom pathlib import Path\n"
        "n = Node.open(Path(sys.argv[1]))\n"
        "for _ in range(6):\n"
        "    n.cases.create_many(n.key, sys.argv[2], [('message.posted', {'text': 'x' * 300})]"
        " * 500, member='bulk')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(northwind.data), case_id], check=True)
    expected = northwind.hash(case_id)

    # Northwind dies in the middle of Contoso's catch-up
    with running_node(northwind.data, port=northwind.port):
        syncing = subprocess.Popen(
            [sys.executable, "-m", "accord", "sync", "--data", str(contoso.data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        eventually(
            lambda: held_events(contoso, case_id) > 40,  # a batch beyond what it held
            "the catch-up to start",
            seconds=30,
        )
    syncing.communicate(timeout=30)  # the server is gone: the sync ends, failed or done
    held = held_events(contoso, case_id)
    assert 40 < held <= len(northwind_events(northwind, case_id))  # whole batches, maybe all
    check = (
        "import sys\nfrom accord.node import Node\nfrom pathlib import Path\n"
        "n = Node.open(Path(sys.argv[1]))\n"
        "assert n.cases.state(sys.argv[2]) == n.cases.refold(sys.argv[2])\n"
        "print(len(n.cases.events(sys.argv[2], verify=True)))\n"
    )
    verified = subprocess.run(
        [sys.executable, "-c", check, str(contoso.data), case_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert int(verified) == held  # every stored event whole and verified, none doubled

    with running_node(northwind.data, port=northwind.port):
        cli(contoso.data, "sync")
    http.close()
    assert contoso.hash(case_id) == expected


@contextlib.contextmanager
def killable(peer: Peer) -> Iterator[subprocess.Popen[bytes]]:
    """``accord serve`` for ``peer`` whose process the test may kill -9."""
    env = {**os.environ, "ACCORD_HOME": str(peer.data)}
    server = subprocess.Popen(
        [sys.executable, "-m", "accord", "serve", "--port", str(peer.port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: _answers(peer.url), f"{peer.name} to answer", seconds=30)
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def post_bulk(peer: Peer, case_id: str, count: int, start: int) -> None:
    """Messages written on ``peer`` straight into its store (as an import or another
    process of the node would), in batches; its running server finds them in the log."""
    for first in range(start, start + count, 250):
        batch = [
            ("message.posted", {"text": f"status {i}: still investigating"})
            for i in range(first, min(start + count, first + 250))
        ]
        peer.node.cases.create_many(peer.node.key, case_id, batch, member="bulk")


def test_a_node_killed_during_2500_messages_converges_without_a_manual_sync(
    tmp_path: Path,
) -> None:
    northwind = make_peer(tmp_path, "Northwind Broadband")
    contoso = make_peer(tmp_path, "Contoso Ltd")
    fibrefix = make_peer(tmp_path, "Fibrefix")
    everyone = (northwind, contoso, fibrefix)
    with contextlib.ExitStack() as stack, httpx.Client(timeout=10) as http:
        stack.enter_context(running_node(northwind.data, port=northwind.port))
        stack.enter_context(running_node(contoso.data, port=contoso.port))
        fibrefix_server = stack.enter_context(killable(fibrefix))
        case_id = ok(
            http.post(
                f"{northwind.url}/api/v1/cases",
                headers=northwind.auth,
                json={"title": "Leased line down"},
            ),
            201,
        )["case"]
        base = f"/api/v1/cases/{case_id}"
        for peer in (contoso, fibrefix):
            link = ok(
                http.post(f"{northwind.url}{base}/invites", headers=northwind.auth, json={}), 201
            )["link"]
            cli(peer.data, "join", link)
        proposal = next(iter(view(contoso, case_id)["open_proposals"]))
        ok(http.post(f"{contoso.url}{base}/proposals/{proposal}/accept", headers=contoso.auth))
        eventually(
            lambda: all("fibrefix" in view(p, case_id)["parties"] for p in everyone),
            "Fibrefix to be a party on every node",
        )

        post_bulk(northwind, case_id, 500, 0)
        eventually(lambda: held_events(fibrefix, case_id) > 100, "pushes to reach Fibrefix")
        fibrefix_server.kill()  # kill -9, in the middle of it
        fibrefix_server.wait(timeout=10)
        post_bulk(northwind, case_id, 2000, 500)
        total = held_events(northwind, case_id)
        eventually(
            lambda: held_events(contoso, case_id) == total,
            "the 2,500 messages to reach Contoso by push",
            seconds=60,
        )
        behind = total - held_events(fibrefix, case_id)
        assert behind > 1000

        # `accord sync` and `accord peers` say Fibrefix is failing and how far behind
        report = cli(northwind.data, "sync", code=1)
        assert fingerprint(fibrefix.node.key.public)[:19] in report, report
        assert "not yet acknowledged" in report
        peers = cli(northwind.data, "peers", code=1)
        assert "Connect" in peers or "refused" in peers, peers

        started = datetime.now(UTC)
        stack.enter_context(killable(fibrefix))  # back, on the same address
        eventually(
            lambda: (
                len({p.hash(case_id) for p in everyone}) == 1
                and held_events(fibrefix, case_id) == total
            ),
            "Fibrefix to catch up with no `accord sync`",
            seconds=90,
        )
        caught_up = datetime.now(UTC) - started
        print(f"Fibrefix caught up {behind} events in {caught_up.total_seconds():.1f} s")
        assert cli(northwind.data, "peers")  # exit 0: nobody is failing now
    for peer in everyone:
        assert peer.node.cases.state(case_id) == peer.node.cases.refold(case_id)
        peer.node.close()
