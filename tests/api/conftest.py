"""A node with members and tokens, served in-process on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from tests.clocks import cheap_passwords

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Api:
    client: TestClient
    node: Node
    clock: Clock
    tom: dict[str, str]  # Authorization headers of Tom Baker's full token
    reader: dict[str, str]  # a token with cases:read only

    def portal(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Portal {token}"}


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    clock = Clock()
    app = create_app(node, now=clock, passwords=cheap_passwords())
    services = app.state.services
    tom = services.members.create(
        "tom", "correct horse battery", role="agent", display_name="Tom Baker"
    )
    full = services.tokens.create(tom.id, "tests", CASEWORK)
    read_only = services.tokens.create(tom.id, "dashboard", ["cases:read"])
    with TestClient(app) as client:
        yield Api(
            client,
            node,
            clock,
            {"Authorization": f"Bearer {full.token}"},
            {"Authorization": f"Bearer {read_only.token}"},
        )
    node.close()
