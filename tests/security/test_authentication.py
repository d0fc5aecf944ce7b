"""Authentication: one login limiter for every way in, the web ``/login`` and the API's
``POST /api/v1/session`` (docs/security.md, issue 22 row 2)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from tests.clocks import TickingClock, cheap_passwords

PASSWORD = "correct horse battery"


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords())
    app.state.services.members.create("tom", PASSWORD, role="agent", display_name="Tom Baker")
    with TestClient(app, base_url="https://support.northwind.example") as client:
        yield client
    node.close()


def _web_login(client: TestClient, password: str) -> int:
    page = client.get("/login").text
    hidden = dict(re.findall(r'name="(csrf[^"]*)"\s+value="([^"]*)"', page))
    form = {"username": "tom", "password": password, "next": "/", **hidden}
    return client.post("/login", data=form, follow_redirects=False).status_code


def _api_login(client: TestClient, password: str) -> int:
    answer = client.post("/api/v1/session", json={"username": "tom", "password": password})
    return answer.status_code


def test_api_login_is_rate_limited(site: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="accord.auth"):
        codes = [_api_login(site, f"guess {n}") for n in range(30)]
        right = site.post("/api/v1/session", json={"username": "tom", "password": PASSWORD})
    assert codes[0] == 401 and codes[-1] == 429
    assert right.status_code == 429
    assert int(right.headers["Retry-After"]) > 0
    assert "set-cookie" not in right.headers
    assert any("login refused (api)" in r.getMessage() for r in caplog.records)


def test_wrong_passwords_on_the_web_close_the_api_too(site: TestClient) -> None:
    codes = [_web_login(site, f"guess {n}") for n in range(30)]
    assert codes[-1] == 429
    assert _api_login(site, PASSWORD) == 429


def test_wrong_passwords_on_the_api_close_the_web_too(site: TestClient) -> None:
    [_api_login(site, f"guess {n}") for n in range(30)]
    assert _web_login(site, PASSWORD) == 429
