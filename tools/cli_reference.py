"""Write docs/cli.md from the commands' own --help, so the reference cannot drift.

Run ``python tools/cli_reference.py`` (or ``make docs``); tests/test_docs.py fails
when the committed file differs from what this produces.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from accord.cli import app

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def commands(group: Any, prefix: list[str]) -> list[list[str]]:
    """Every command path under ``group`` (Typer ships its own click; duck-type it)."""
    found = [prefix]
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            found += commands(command, [*prefix, name])
        elif command is not None and not command.hidden:
            found.append([*prefix, name])
    return found


def render() -> str:
    os.environ["COLUMNS"] = "100"
    os.environ["NO_COLOR"] = "1"
    os.environ["TERM"] = "dumb"
    runner = CliRunner()
    root = typer.main.get_command(app)
    parts = [
        "# Command line reference\n",
        "Generated from `--help` by `tools/cli_reference.py`; do not edit by hand.\n",
    ]
    for path in commands(root, []):
        result = runner.invoke(app, [*path, "--help"], prog_name="accord", color=False)
        title = " ".join(["accord", *path])
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        parts.append(f"## `{title}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
