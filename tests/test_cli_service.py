"""``accord team|routing|calendar|sla|handoff|notifications`` through the real CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from accord.cli import app
from tests.clocks import cheap_passwords

runner = CliRunner()


def accord(*args: str | Path, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(app, [str(a) for a in args], input=stdin, env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output
    return result.output


def test_teams_routing_calendar_targets_and_a_handoff(tmp_path: Path) -> None:
    node = ["--data", str(tmp_path / "northwind")]
    accord("init", "--name", "Northwind Broadband", *node)
    for user, name, role in (("tom", "Tom Baker", "agent"), ("sara", "Sara Lind", "lead")):
        accord(
            "member",
            "add",
            user,
            "--role",
            role,
            "--name",
            name,
            "--password-stdin",
            *node,
            stdin="correct horse battery\n",
        )
    assert "added team Broadband" in accord("team", "add", "Broadband", "--lead", "sara", *node)
    assert "already a team" in accord("team", "add", "Broadband", *node, code=1)
    assert "Sara Lind" in accord("team", "list", *node)
    shown = accord(
        "routing",
        "set",
        "tom",
        "--team",
        "Broadband",
        "--skill",
        "billing",
        "--availability",
        "away",
        *node,
    )
    assert "team Broadband, skills billing, away" in shown
    assert "availability is one of" in accord(
        "routing", "set", "tom", "--availability", "asleep", *node, code=1
    )
    assert "added rule 1" in accord(
        "routing", "add-rule", "--team", "Broadband", "--topic", "refund", *node
    )
    assert "refund" in accord("routing", "rules", *node)
    assert "removed rule 1" in accord("routing", "remove-rule", "1", *node)
    assert "no routing rule 1" in accord("routing", "remove-rule", "1", *node, code=1)

    assert "open around the clock" in accord("calendar", "show", *node)
    assert "bad day" in accord(
        "calendar",
        "set",
        "--timezone",
        "Europe/London",
        "--hours",
        "mun-fri 09:00-17:30",
        *node,
        code=1,
    )
    accord(
        "calendar",
        "set",
        "--timezone",
        "Europe/London",
        "--hours",
        "mon-fri 09:00-17:30",
        "--country",
        "GB",
        "--subdivision",
        "ENG",
        *node,
    )
    assert "Europe/London" in accord("calendar", "show", *node)
    assert "first response 60 min" in accord("sla", "--first", "60", "--next", "240", *node)

    case_id = accord("case", "new", "Refund", "--customer", "Priya Shah", *node).strip()
    assert "has no owner yet" in accord(
        "handoff", case_id, "--to", "sara", "--note", "x", "--by", "tom", *node, code=1
    )
    from accord.auth.members import MemberStore
    from accord.node import Node
    from accord.service.ownership import Ownership

    opened = Node.open(tmp_path / "northwind")
    try:
        members = MemberStore(opened.db, passwords=cheap_passwords())
        tom = members.by_username("tom")
        assert tom is not None
        from datetime import UTC, datetime

        Ownership(opened.cases, opened.key, members, now=lambda: datetime.now(UTC)).take(
            case_id, tom
        )
    finally:
        opened.close()
    assert "a handoff needs a note" in accord(
        "handoff", case_id, "--to", "sara", "--note", " ", "--by", "tom", *node, code=1
    )
    assert "Sara Lind now owns the case (1 transfers)" in accord(
        "handoff",
        case_id,
        "--to",
        "sara",
        "--note",
        "Refund approved; tell Priya",
        "--by",
        "tom",
        *node,
    )
    assert "Refund approved" in accord("notifications", "--member", "sara", *node)
