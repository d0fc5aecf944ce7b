"""``accord remote`` and the sync client against a real ``accord serve`` process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from accord.auth.members import MemberStore
from accord.auth.tokens import TokenStore
from accord.cli import app
from accord.client import AccordClient, NotFound, StaleProposal
from accord.node import Node
from tests.clocks import cheap_passwords

from ..servers import free_port, running_node
from .conftest import CASEWORK, PASSWORD

runner = CliRunner()


def remote(*args: str, token: str | None = None, code: int = 0) -> str:
    env = {"COLUMNS": "200", "ACCORD_TOKEN": token, "ACCORD_URL": None}  # None: unset
    result = runner.invoke(app, ["remote", *args], env=env)
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.slow
def test_remote_commands_and_the_client_against_accord_serve(tmp_path: Path) -> None:
    data = tmp_path / "northwind"
    node = Node.init(data, name="Northwind Broadband")
    tom = MemberStore(node.db, passwords=cheap_passwords()).create(
        "tom", PASSWORD, role="agent", display_name="Tom Baker"
    )
    token = TokenStore(node.db).create(tom.id, "remote", CASEWORK).token
    node.close()

    with running_node(data) as base, AccordClient(base, token=token) as accord:
        case_id = accord.open_case("Fibre upgrade", customer={"id": "priya", "name": "Priya"})[
            "case"
        ]
        change = {"op": "data.put", "key": "speed", "value": {"type": "text", "value": "900"}}
        first = accord.propose(case_id, [change])["events"][0]
        second = accord.propose(case_id, [{**change, "key": "router"}])["events"][0]
        link = accord.portal_link(case_id, "priya", "priya@example.com")
        with AccordClient(base, portal=link["token"]) as priya:
            priya.portal_accept(first)
            with pytest.raises(StaleProposal) as stale:
                priya.portal_accept(second)
        assert stale.value.rebase["base"] == 1
        with pytest.raises(NotFound):
            accord.case("sha256:" + "0" * 64)

        listing = remote("cases", "--url", base, token=token)
        assert "Fibre upgrade" in listing and case_id[:19] in listing
        shown = remote("case", case_id[:12], "--url", base, "--token", token)
        assert "Fibre upgrade" in shown and "agreement v1" in shown and "900" in shown
        as_json = orjson.loads(remote("case", case_id, "--url", base, "--json", token=token))
        assert as_json["case"] == case_id and as_json["agreement"]["version"] == 1
        assert orjson.loads(remote("cases", "--url", base, "--json", token=token))["cases"]

        assert "401" in remote("cases", "--url", base, token="acc_forged", code=1)
        assert "no case matches" in remote("case", "sha256:ff", "--url", base, token=token, code=1)
    assert "Missing option '--token'" in remote("cases", "--url", base, code=2)
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach" in remote("cases", "--url", unreachable, token=token, code=1)
