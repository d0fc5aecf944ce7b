"""Docs that are checked against the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tests.clocks import TickingClock, cheap_passwords

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools/cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs/cli.md").read_text() == module.render(), (
        "docs/cli.md is stale: run `make docs`"
    )


def test_readme_names_the_two_commands_and_documented_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    reference = (ROOT / "docs/cli.md").read_text()
    for command in set(re.findall(r"`(accord [a-z]+(?: [a-z]+)?)", readme)):
        assert f"## `{command}" in reference, f"README mentions {command!r}, which does not exist"


def test_changelog_has_an_unreleased_section() -> None:
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_api_reference_names_every_endpoint(tmp_path: Path) -> None:
    from accord.api.app import create_app
    from accord.node import Node

    node = Node.init(tmp_path / "node", name="Docs")
    try:
        spec = create_app(node, now=TickingClock(), passwords=cheap_passwords()).openapi()
    finally:
        node.close()
    reference = (ROOT / "docs/api.md").read_text()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method in operations
        if f"{method.upper()} {path}`" not in reference
    ]
    assert not missing, f"docs/api.md does not describe: {missing}"
