"""Every page of the web app sends the same security headers: a Content-Security-Policy
with no inline script or style, ``nosniff``, no framing, a referrer policy and no caching
(docs/security.md, issue 22 row 10)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from accord.api.auth import SESSION_COOKIE
from accord.web import API_PREFIXES
from accord.web.session import CSP
from tests.web.conftest import make_desk

NOT_PAGES = ("/metrics", "/openapi.json", "/health", "/ready")
PUBLIC_ASSETS = ("/web/static/", "/docs/assets/", "/chat/widget.js")


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps those in a branch)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from _routes(route.effective_candidates())
        else:
            yield route


def _pages(app: Any) -> list[str]:
    """Every GET route a browser may open, path parameters filled with a placeholder."""
    paths = []
    for route in _routes(app.routes):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None) or ()
        if not path or "GET" not in methods:
            continue
        if path.startswith(API_PREFIXES) or path.startswith(NOT_PAGES):
            continue
        paths.append(re.sub(r"\{[^}]+\}", "x1", path))
    return sorted(set(paths))


def test_every_page_sends_the_same_security_headers(tmp_path: Path) -> None:
    desk = make_desk(tmp_path / "node")
    ann = desk.services.members.by_username("ann")
    session = desk.services.sessions.create(ann.id)
    client = TestClient(desk.app, base_url="https://support.northwind.example")
    client.cookies.set(SESSION_COOKIE, session.token)
    pages = _pages(desk.app)
    assert "/dashboard" in pages and "/compare" in pages and "/" in pages
    checked = []
    for path in pages:
        answer = client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
        if not answer.headers.get("content-type", "").startswith("text/html"):
            continue
        checked.append(path)
        assert answer.headers.get("content-security-policy") == CSP, path
        assert answer.headers.get("x-content-type-options") == "nosniff", path
        assert answer.headers.get("x-frame-options") == "DENY", path
        assert answer.headers.get("referrer-policy") in ("same-origin", "no-referrer"), path
        assert answer.headers.get("cache-control") == "no-store", path
        # the policy allows no inline script or style, so the page must carry none
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text), path
        assert "<style" not in answer.text and " style=" not in answer.text, path
        # and loads its scripts and stylesheets from this node, never from a CDN
        assert not re.search(r'<(script|link)[^>]+(src|href)="(?!/)', answer.text), path
    assert {"/dashboard", "/compare", "/docs"} <= set(checked)
    desk.node.close()


def test_the_api_docs_are_served_from_this_node(tmp_path: Path) -> None:
    desk = make_desk(tmp_path / "node")
    client = TestClient(desk.app)
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        loaded = client.get(asset)
        assert loaded.status_code == 200 and loaded.content, asset
    assert client.get("/redoc").status_code == 404  # ReDoc only exists on a CDN
    desk.node.close()


def _every_route(app: Any) -> list[tuple[str, str]]:
    """(method, path) for every HTTP route of the application — pages, the API, the
    platforms' webhooks, federation, operations and mounted static files — path parameters
    filled with a placeholder."""
    found = set()
    for route in _routes(app.routes):
        path = getattr(route, "path", None)
        if not path or type(route).__name__ == "WebSocketRoute":
            continue
        methods = getattr(route, "methods", None)
        if methods is None:  # a mount: static files
            found.add(("GET", path.rstrip("/") + "/x1"))
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            found.add((method, re.sub(r"\{[^}]+\}", "x1", path)))
    return sorted(found)


def test_every_route_sends_the_same_security_headers(tmp_path: Path) -> None:
    """Every route of the application, with every method, whatever it answers (a page, a
    JSON body, a redirect, a 4xx from the router or the route): the same headers."""
    desk = make_desk(tmp_path / "node")
    ann = desk.services.members.by_username("ann")
    session = desk.services.sessions.create(ann.id)
    token = desk.services.tokens.create(ann.id, "headers", ["cases:read"]).token
    client = TestClient(desk.app, base_url="https://support.northwind.example")
    client.cookies.set(SESSION_COOKIE, session.token)
    routes = _every_route(desk.app)
    paths = {path for _, path in routes}
    assert {"/api/v1/cases", "/hooks/x1", "/federation/v1/heads", "/health"} <= paths
    assert len(routes) > 150
    statuses = set()
    for method, path in routes:
        answer = client.request(
            method,
            path,
            headers={"Authorization": f"Bearer {token}"} if path.startswith("/api/") else {},
            follow_redirects=False,
        )
        statuses.add(answer.status_code)
        where = f"{method} {path} ({answer.status_code})"
        assert answer.headers.get("content-security-policy") == CSP, where
        assert answer.headers.get("x-content-type-options") == "nosniff", where
        assert answer.headers.get("x-frame-options") == "DENY", where
        assert answer.headers.get("referrer-policy") in ("same-origin", "no-referrer"), where
        if not path.startswith(PUBLIC_ASSETS):  # which hold nothing private
            assert answer.headers.get("cache-control") == "no-store", where
    assert {200, 404} <= statuses and statuses & {401, 403, 405, 422}
    desk.node.close()
