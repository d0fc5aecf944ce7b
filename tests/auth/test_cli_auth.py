"""``accord member``, ``accord token`` and ``accord portal`` through the real command."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accord.auth.members import MemberStore
from accord.auth.portal import PortalLinks, load_or_create_secret
from accord.auth.tokens import TOKEN, TokenStore
from accord.cli import app
from accord.node import Node

from .helpers import PASSWORD

runner = CliRunner()


def run(command: str, node: list[str], *, code: int = 0, input: str | None = None) -> Result:
    """Run ``accord COMMAND`` (shell-quoted) on ``node``; check the exit code."""
    args = [*shlex.split(command), *node]
    result = runner.invoke(app, args, input=input, env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> list[str]:
    args = ["--data", str(tmp_path / "node"), "--database", database_url]
    run("init --name 'Northwind Broadband'", args)
    return args


@contextmanager
def opened(node: list[str]) -> Iterator[Node]:
    handle = Node.open(Path(node[1]), database=node[3])
    try:
        yield handle
    finally:
        handle.close()


def add(node: list[str], username: str, *, code: int = 0, password: str = PASSWORD) -> Result:
    return run(
        f"member add {username} --role agent --name 'Tom Baker' --password-stdin",
        node,
        input=password + "\n",
        code=code,
    )


def test_member_add_list_disable(node: list[str]) -> None:
    added = add(node, "Tom.Baker")
    assert "added member tom.baker (Tom Baker), role agent" in added.output
    assert PASSWORD not in added.output
    listed = run("member list", node).output
    assert "tom.baker" in listed and "agent" in listed and "active" in listed
    assert "already exists" in add(node, "tom.baker", code=1).output
    assert "disabled member tom.baker" in run("member disable tom.baker", node).output
    assert "disabled" in run("member list", node).output
    assert "no member named 'ghost'" in run("member disable ghost", node, code=1).output
    with opened(node) as handle:
        assert MemberStore(handle.db).authenticate("tom.baker", PASSWORD) is None


def test_member_add_refuses_bad_input(node: list[str]) -> None:
    assert "username" in add(node, "'Tom Baker'", code=1, password="").output
    weak = add(node, "tom", code=1, password="short")
    assert "at least 12 characters" in weak.output and "short" not in weak.stdout
    bad_role = run("member add tom --role owner --name Tom", node, code=2)
    assert "invalid value for '--role'" in bad_role.output.lower()
    assert "tom" not in run("member list", node).output


def test_member_add_prompts_twice_without_echo(node: list[str]) -> None:
    result = run("member add ada --role admin --name Ada", node, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert "added member ada" in result.output and PASSWORD not in result.output


def test_token_create_list_revoke(node: list[str]) -> None:
    add(node, "tom.baker")
    created = run(
        "token create --member tom.baker --name 'inbox sync' --scope cases:read "
        "--scope cases:write --expires-days 30",
        node,
    )
    token = created.stdout.strip()
    assert TOKEN.fullmatch(token)
    assert "shown only this once" in created.stderr
    with opened(node) as handle:
        grant = TokenStore(handle.db).authenticate(token)
    assert grant is not None and grant.member.username == "tom.baker"
    assert grant.scopes == {"cases:read", "cases:write"}

    listed = run("token list", node).output
    assert "inbox sync" in listed and "cases:read cases:write" in listed and "active" in listed
    assert token not in listed and token[4:] not in listed
    revoked = run("token revoke 1", node).output
    assert "revoked token 1 (inbox sync) of tom.baker" in revoked
    assert "revoked" in run("token list --member tom.baker", node).output
    assert "no API token with id 7" in run("token revoke 7", node, code=1).output
    with opened(node) as handle:
        assert TokenStore(handle.db).authenticate(token) is None


def test_token_create_refusals(node: list[str]) -> None:
    add(node, "tom.baker")
    create = "token create --member {} --name x --scope {}"
    beyond = run(create.format("tom.baker", "members:admin"), node, code=1)
    assert "may not grant members:admin" in beyond.output and "acc_" not in beyond.output
    unknown = run(create.format("tom.baker", "cases:all"), node, code=1)
    assert "unknown scope 'cases:all'" in unknown.output
    assert (
        "no member named 'ghost'" in run(create.format("ghost", "cases:read"), node, code=1).output
    )
    assert "ghost" in run("token list --member ghost", node, code=1).output


def new_case(node: list[str]) -> str:
    return run("case new Broadband --customer 'Priya Shah'", node).stdout.strip()


def test_portal_link(node: list[str]) -> None:
    case_id = new_case(node)
    result = run(
        f"portal link {case_id[:20]} --party customer --identity priya@example.com --hours 2",
        node,
    )
    path = result.stdout.strip()
    assert path.startswith("/portal/") and "valid until" in result.stderr
    with opened(node) as handle:
        links = PortalLinks(load_or_create_secret(handle.db))
    grant = links.verify(path.removeprefix("/portal/"))
    assert (grant.case_id, grant.party_id) == (case_id, "customer")
    assert grant.identity == "priya@example.com"


def test_portal_link_errors(node: list[str]) -> None:
    link = "portal link {} --party {} --identity {}"
    unknown = run(link.format("sha256:0000", "customer", "p@x"), node, code=1)
    assert "no case matches" in unknown.output
    case_id = new_case(node)
    own = run(link.format(case_id, "northwind-broadband", "p@x"), node, code=1)
    assert "not hosted by this node" in own.output and "/portal/" not in own.stdout
    missing = run(link.format(case_id, "carrier", "p@x"), node, code=1)
    assert "has no party 'carrier'" in missing.output
    assert "northwind-broadband, customer" in missing.output
    assert "identity" in run(link.format(case_id, "customer", "' '"), node, code=1).output


def test_either_cli_module_can_be_imported_first() -> None:
    for first, second in (
        ("accord.cli.auth", "accord.cli"),
        ("accord.cli", "accord.cli.auth"),
        ("accord.cli.common", "accord.cli"),
    ):
        code = (
            f"import {first}, {second}\n"
            "names = {g.name for g in accord.cli.app.registered_groups}\n"
            "assert {'member', 'token', 'portal'} <= names, names"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
