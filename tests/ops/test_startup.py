"""The command line starts light (issue 23): what ``accord`` imports, never how long it
takes. ``accord --help`` loads no database, web, numeric or HTTP library, and ``accord
case show`` no more than SQLAlchemy; the cheap schema check that spares Alembic on every
command gives the same answers as Alembic. benchmarks/cli_startup.py measures the times."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from accord.channels.connectors.accounts import PLATFORMS
from accord.channels.connectors.fields import FIELDS
from accord.cli import app
from accord.outcomes import catalogue, measures
from accord.store import migrate
from accord.store.database import Database

# Libraries a command that does not use them must not load: the web stack, the numeric
# stack, the HTTP client, migrations, the database toolkit and the signature library.
HEAVY = {"sqlalchemy", "fastapi", "starlette", "numpy", "scipy", "alembic", "httpx", "pydantic"}
HEAVY_FOR_HELP = HEAVY | {"nacl", "uvicorn", "jinja2"}
# Typer (0.29) coerces a sub-command's parameters with Pydantic, its help included: the
# one heavy library Accord cannot leave out of a sub-command.
TYPER_OWN = {"pydantic"}

PROBE = """
import runpy, sys
sys.argv = ["accord", *sys.argv[1:]]
try:
    runpy.run_module("accord", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
print("LOADED", sorted({m.split(".")[0] for m in sys.modules}), file=sys.stderr)
sys.exit(code)
"""


def loaded(*args: str, home: Path) -> tuple[set[str], str]:
    """Run ``accord ARGS`` in a fresh interpreter; the top-level packages it imported."""
    env = {**os.environ, "ACCORD_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return set(ast.literal_eval(line.removeprefix("LOADED "))), done.stdout


def test_importing_the_command_line_loads_no_heavy_library() -> None:
    probe = (
        "import accord.cli, sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *sorted(HEAVY_FOR_HELP)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_help_loads_no_heavy_library_and_lists_every_command(tmp_path: Path) -> None:
    modules, output = loaded("--help", home=tmp_path)
    assert not modules & HEAVY_FOR_HELP
    for command in ("serve", "case", "mail", "mailbox", "metrics", "remote", "secrets"):
        assert command in output
    sub, output = loaded("channel", "add", "--help", home=tmp_path)
    assert not sub & (HEAVY_FOR_HELP - TYPER_OWN)
    assert "whatsapp, messenger" in output


def test_case_show_loads_the_database_toolkit_only(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "node"
    made = runner.invoke(app, ["init", "--data", str(home), "--name", "Northwind Broadband"])
    assert made.exit_code == 0, made.output
    opened = runner.invoke(app, ["case", "new", "Broadband contract", "--data", str(home)])
    assert opened.exit_code == 0, opened.output
    case_id = opened.output.strip().splitlines()[-1]
    modules, output = loaded("case", "show", case_id[:20], home=home)
    assert "Broadband contract" in output
    assert "sqlalchemy" in modules
    assert not modules & (HEAVY - {"sqlalchemy"} - TYPER_OWN)


def test_the_cheap_schema_check_agrees_with_alembic(database_url: str) -> None:
    migrate.head.cache_clear()
    assert migrate.head() == migrate._alembic_head()
    db = Database(database_url)
    try:
        with db.read() as conn:
            assert (
                migrate.current_in(conn) == MigrationContext.configure(conn).get_current_revision()
            )
        assert migrate.current(db) == migrate.head()
        with db.write() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
        assert migrate.current(db) is None
    finally:
        db.dispose()


def test_an_empty_database_has_no_revision(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert migrate.current(db) is None
    finally:
        db.dispose()


def test_the_light_catalogues_are_the_ones_the_services_use() -> None:
    assert list(FIELDS) == list(PLATFORMS)  # the help and checks of `accord channel add`
    assert measures.METRICS is catalogue.METRICS
