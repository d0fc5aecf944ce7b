"""``accord import``: the dry-run report, the import, the second run that finds nothing new,
and a clear error for a folder that holds no export."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from accord.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def accord(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def node(tmp_path: Path) -> list[str]:
    args = ["--data", str(tmp_path / "node")]
    accord("init", "--name", "Northwind Broadband", *args)
    return args


def test_dry_run_then_import_then_nothing_new(node: list[str]) -> None:
    folder = FIXTURES / "zendesk"
    dry = orjson.loads(accord("import-from", "zendesk", folder, "--dry-run", "--json", *node))
    assert dry["dry_run"] is True and dry["cases_created"] == 3
    assert dry["skipped"] == [{"record": "ticket 5104", "why": "deleted in Zendesk"}]
    shown = accord("import-from", "zendesk", folder, *node)
    assert "zendesk: imported" in shown and "cases created" in shown
    assert "skipped ticket 5104: deleted in Zendesk" in shown
    again = accord("import-from", "zendesk", folder, *node)
    assert "nothing new: every record was imported before" in again
    listed = accord("case", "list", *node)
    assert "Second line for the Leeds office" in listed


def test_csv_and_rt_from_the_command_line(node: list[str]) -> None:
    csv = FIXTURES / "csv"
    report = orjson.loads(
        accord(
            "import-from",
            "csv",
            "--customers",
            csv / "customers.csv",
            "--cases",
            csv / "cases.csv",
            "--messages",
            csv / "messages.csv",
            "--json",
            *node,
        )
    )
    assert report["cases_created"] == 2 and report["failed"] == []
    report = orjson.loads(accord("import-from", "rt", FIXTURES / "rt", "--json", *node))
    assert report["cases_created"] == 2 and report["customers_matched"] == 1


def test_a_folder_without_an_export_is_a_clear_error(node: list[str], tmp_path: Path) -> None:
    output = accord("import-from", "zendesk", tmp_path, *node, code=1)
    assert "no tickets.json" in output
    output = accord("import-from", "csv", *node, code=1)
    assert "give a customers file, a cases file or both" in output
