"""The ``accord`` command, through its real entry points."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from accord.cli import app
from accord.store import migrate

from .servers import running_node

runner = CliRunner()


def accord(*args: str | Path, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> list[str]:
    """CLI arguments naming a fresh node on each backend."""
    args = ["--data", str(tmp_path / "node"), "--database", database_url]
    accord("init", "--name", "Northwind Broadband", *args)
    return args


def test_init_refuses_to_overwrite_a_key(node: list[str], tmp_path: Path) -> None:
    key_file = tmp_path / "node" / "node.key"
    before = key_file.read_bytes()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    output = accord("init", *node, code=1)
    assert "never overwritten" in output
    assert key_file.read_bytes() == before
    assert "already set up" in accord("init", "--if-missing", *node)


def test_a_database_belongs_to_one_node(node: list[str], tmp_path: Path) -> None:
    other = ["--data", str(tmp_path / "other"), "--database", node[3]]
    assert "already belongs to a node" in accord("init", *other, code=1)
    assert not (tmp_path / "other" / "node.key").exists()


def test_commands_without_a_node_say_how_to_make_one(tmp_path: Path) -> None:
    output = accord("case", "list", "--data", tmp_path / "none", code=1)
    assert "accord init" in output


def test_case_round_trip_export_verify_import(node: list[str], tmp_path: Path) -> None:
    case_id = accord(
        "case",
        "new",
        "Broadband contract",
        "--topic",
        "price=New price",
        "--customer",
        "Priya Shah",
        *node,
    ).strip()
    assert case_id.startswith("sha256:")
    accord("case", "post", case_id[7:20], "Your case is owned by Tom Baker.", *node)
    shown = accord("case", "show", case_id, *node)
    assert "Priya Shah" in shown and "New price" in shown
    state = orjson.loads(accord("case", "show", case_id, "--json", *node))
    assert state["messages"] == 1 and state["events"] == 2
    digest = accord("case", "hash", case_id, *node).strip()
    assert "message.posted" in accord("case", "log", case_id, *node)

    bundle = tmp_path / "case.jsonl"
    accord("export", case_id, "-o", bundle, *node)
    report = orjson.loads(accord("verify", bundle, "--json"))
    assert report["ok"] and report["state_hash"] == digest and report["events"] == 2

    other = ["--data", str(tmp_path / "laptop")]
    accord("init", "--personal", "--name", "Priya", *other)
    assert "stored 2" in accord("import", bundle, *other)
    assert accord("case", "hash", case_id, *other).strip() == digest
    assert "already held 2" in accord("import", bundle, *other)


def test_verify_reports_tampering_and_exits_nonzero(node: list[str], tmp_path: Path) -> None:
    case_id = accord("case", "new", "Refund", *node).strip()
    accord("case", "post", case_id, "The refund is 40.00 GBP", *node)
    bundle = tmp_path / "case.jsonl"
    accord("export", case_id, "-o", bundle, *node)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(bundle.read_bytes().replace(b"40.00 GBP", b"4.00 GBP"))
    output = accord("verify", tampered, code=1)
    assert "FAIL" in output and "NOT OK" in output
    assert "does not verify" in output or "refers to events not held" in output
    assert "cannot read" in accord("verify", tmp_path / "missing.jsonl", code=2)


def test_import_of_a_tampered_bundle_stores_only_what_verifies(
    node: list[str], tmp_path: Path
) -> None:
    case_id = accord("case", "new", "Refund", *node).strip()
    for text in ("first", "second 40.00 GBP", "third"):
        accord("case", "post", case_id, text, *node)
    bundle = tmp_path / "case.jsonl"
    accord("export", case_id, "-o", bundle, *node)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(bundle.read_bytes().replace(b"40.00 GBP", b"4.00 GBP"))
    other = ["--data", str(tmp_path / "receiver")]
    accord("init", *other)
    output = accord("import", tampered, *other, code=1)
    # the opening and first message verify; the forged one and its descendant do not
    assert "stored 2" in output and "rejected 2" in output
    assert "signature does not verify" in output and "refers to events not held" in output
    state = orjson.loads(accord("case", "show", case_id, "--json", *other))
    assert state["events"] == 2 and state["messages"] == 1
    assert "stored 2, already held 2, rejected 0" in accord("import", bundle, *other)
    assert accord("case", "hash", case_id, *other) == accord("case", "hash", case_id, *node)


def test_unknown_case_is_a_clear_error(node: list[str]) -> None:
    assert "no case matches" in accord("case", "show", "deadbeef", *node, code=1)


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    args = ["--data", str(tmp_path / "fresh")]
    head = migrate.head()
    assert f"empty → {head}" in accord("db", "upgrade", *args)
    assert f"already at {head}" in accord("db", "upgrade", *args)
    assert f"database at {head}" in accord("db", "current", *args)


def test_every_command_has_help() -> None:
    for command in (["init"], ["serve"], ["case", "new"], ["verify"], ["db", "upgrade"]):
        assert "Usage" in accord(*command, "--help")


def test_serve_answers_health(tmp_path: Path) -> None:
    data = tmp_path / "served"
    accord("init", "--data", data)
    with running_node(data) as base, httpx.Client(base_url=base) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/ready").json() == {"status": "ready"}
        assert client.get("/api/v1/cases").status_code == 401
        home = client.get("/")  # the inbox, once logged in
        assert home.status_code == 303 and home.headers["location"] == "/login?next=%2F"
        assert "Log in to Accord" in client.get("/login").text
        # on SQLite the timer worker runs inline: at start it schedules the next digest
        for _ in range(100):
            if "digest.daily" in accord("jobs", "list", "--data", data):
                break
            threading.Event().wait(0.05)
        assert "digest.daily" in accord("jobs", "list", "--data", data)
