"""The chat widget in real headless Chromium, embedded with one <script> tag in a plain
HTML page served from another origin on loopback: the visitor sends, a member's reply
arrives, and after a reload the conversation is still there."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from accord.api.app import create_app
from accord.node import Node
from accord.service.negotiation import Actor
from tests.browser import ARGS, CHROMIUM
from tests.clocks import TickingClock, cheap_passwords
from tests.servers import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("chromium"),
]


@pytest.fixture
def accord(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband")
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    services.members.create("tom", "correct horse battery", role="agent", display_name="Tom Baker")
    services.ownership.set_profile("tom", availability="online")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}", services
    server.should_exit = True
    thread.join(timeout=10)
    services.close()
    node.close()


@pytest.fixture
def site(tmp_path: Path, accord: tuple[str, Any]) -> Iterator[str]:
    """Somebody's plain web page on another origin, with the widget's one tag."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Northwind</title>"
        "</head><body><h1>Northwind Broadband</h1><p>Fast lines, fair prices.</p>"
        f'<script src="{accord[0]}/chat/widget.js" async></script></body></html>'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[assignment]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_send_receive_reload(site: str, accord: tuple[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, services = accord
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=ARGS,
        )
        try:
            page = browser.new_page()
            page.goto(site)
            page.get_by_role("button", name="Chat with us").click()
            page.get_by_placeholder("Type a message").fill("<b>Is</b> there an outage in Leeds?")
            page.get_by_role("button", name="Send", exact=True).click()
            log = page.get_by_role("log")
            expect(log).to_contain_text("<b>Is</b> there an outage in Leeds?")  # text, not HTML
            visitor = page.evaluate(
                "() => Object.entries(localStorage).find(([k]) => k.startsWith('accord-chat'))[1]"
            )
            case_id = services.webchat.current_case(visitor)
            assert case_id is not None
            services.negotiation.post_message(
                Actor(member="Tom Baker", via="web"), case_id, "Yes: fixed by 3 pm today."
            )
            expect(log).to_contain_text("Yes: fixed by 3 pm today.", timeout=10_000)
            assert page.locator("#accord-chat b").count() == 0
            shots = tmp_path / "screenshots"
            shots.mkdir()
            page.screenshot(path=str(shots / "chat-widget.png"))
            page.reload()
            expect(page.get_by_role("log")).to_contain_text("Yes: fixed by 3 pm today.")
            expect(page.get_by_role("log")).to_contain_text("there an outage in Leeds?")
            artefacts = Path("test-artifacts")
            artefacts.mkdir(exist_ok=True)
            shutil.copy(shots / "chat-widget.png", artefacts / "chat-widget.png")
        finally:
            browser.close()
