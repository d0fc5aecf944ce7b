"""Three real nodes — supplier, business customer, subcontractor — negotiate one case and
end with byte-identical copies; a node that was down catches up; a sync cut short by a
killed peer loses and duplicates nothing."""

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
import orjson
import pytest

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def hash(self, case_id: str) -> str:
        return cli(self.data, "case", "hash", case_id)


def make_peer(tmp_path: Path, name: str) -> Peer:
    data = tmp_path / name.lower().split()[0]
    port = free_port()
    cli(data, "init", "--name", name, "--url", f"http://127.0.0.1:{port}")
    cli(
        data,
        "member",
        "add",
        "agent",
        "--role",
        "agent",
        "--name",
        f"{name} agent",
        "--password-stdin",
        stdin="correct horse battery staple\n",
    )
    token = cli(
        data,
        "token",
        "create",
        "--member",
        "agent",
        "--name",
        "e2e",
        "--scope",
        "cases:read",
        "--scope",
        "cases:write",
    )
    return Peer(name, data, port, token)


def northwind_events(peer: Peer, case_id: str) -> list[str]:
    return cli(peer.data, "case", "log", case_id, "--json").splitlines()


def held_events(peer: Peer, case_id: str) -> int:
    events: int = orjson.loads(cli(peer.data, "case", "show", case_id, "--json"))["events"]
    return events


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
        cli(fibrefix.data, "sync")
        assert fx in view(fibrefix, case_id)["parties"]

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

        for peer in (northwind, contoso, fibrefix):  # pushes are best effort; pulls settle
            cli(peer.data, "sync")
        for peer in (northwind, contoso, fibrefix):
            cli(peer.data, "sync")
        hashes = {peer.name: peer.hash(case_id) for peer in (northwind, contoso, fibrefix)}
        assert len(set(hashes.values())) == 1, hashes
        state = view(contoso, case_id)
        assert state["activities"]["done"][0]["activity"] == "visit"
        assert state["evidence"] == [] and state["equivocations"] == []
        peers = cli(contoso.data, "peers")
        assert "127.0.0.1" in peers

    # an export verifies offline to the same state hash as the live nodes
    bundle = tmp_path / "fibrefix-copy.jsonl"
    cli(fibrefix.data, "export", case_id, "-o", str(bundle))
    report = subprocess.run(
        [sys.executable, "-m", "accord", "verify", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0 and hashes["Fibrefix"] in report.stdout


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
