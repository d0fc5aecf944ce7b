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


# -- issue 22, row 13: common and breached passwords; login CSRF ----------------------------


@pytest.mark.parametrize(
    "weak", ["password1234", "qwertyuiop12", "iloveyou2024", "dragon123456", "PASSWORD1234"]
)
def test_common_and_breached_passwords_are_refused(
    site: TestClient, weak: str, caplog: pytest.LogCaptureFixture
) -> None:
    from accord.auth.errors import PasswordPolicyError

    members = site.app.state.services.members  # type: ignore[attr-defined]
    with (
        caplog.at_level(logging.WARNING, logger="accord.auth"),
        pytest.raises(PasswordPolicyError, match=r"breaches|too easy to guess"),
    ):
        members.create("weak", weak, role="agent", display_name="Weak")
    assert members.by_username("weak") is None
    assert any("refused a new password" in r.getMessage() for r in caplog.records)
    assert weak not in caplog.text  # the password itself is never logged


def test_a_strong_password_is_still_accepted(site: TestClient) -> None:
    members = site.app.state.services.members  # type: ignore[attr-defined]
    members.create("ok", "staple battery horse correct", role="agent", display_name="Ok")


def test_login_csrf_a_post_from_another_site_is_refused(
    site: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    form = {"username": "tom", "password": PASSWORD, "next": "/"}
    with caplog.at_level(logging.WARNING, logger="accord.auth"):
        forged = site.post("/login", data=form, follow_redirects=False)  # no cookie, no field
    assert forged.status_code == 403 and "did not come from Accord" in forged.text
    assert "accord_session" not in forged.headers.get("set-cookie", "")
    assert any("without the login form's CSRF token" in r.getMessage() for r in caplog.records)
    # the browser holds a login cookie, but the attacker cannot read it to repeat it
    site.get("/login")
    wrong = site.post("/login", data={**form, "csrf": "x" * 43}, follow_redirects=False)
    assert wrong.status_code == 403
    assert "accord_session" not in wrong.headers.get("set-cookie", "")
    # the form as served logs in
    assert _web_login(site, PASSWORD) == 303
    cookie = site.get("/login").headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie and "path=/login" in cookie
