#!/usr/bin/env python
"""Screenshots of the outcome dashboard and a comparison, for docs/screenshots/.

Seeds a throwaway demo node (``accord demo``), serves it on a free loopback port, logs
in as the lead Sara Lind and photographs ``/dashboard`` and ``/compare?a=template:
billing@v1&b=template:billing@v2`` with headless Chromium (Debian's ``/usr/bin/chromium``
through Playwright). ``--cases`` sets the demo's size (default 300).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "northwind demo password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(data: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "ACCORD_HOME": str(data)}
    cmd = [sys.executable, "-m", "accord", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as srv:
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):  # /health answers at once; /ready once it has started
                try:
                    if httpx.get(f"{base}/ready", timeout=0.5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if srv.poll() is not None:
                    raise RuntimeError("accord serve exited")
                time.sleep(0.1)
            yield base
        finally:
            srv.terminate()
            srv.communicate(timeout=10)


def shoot(base: str, out: Path, *, width: int = 1280) -> list[Path]:
    """Log in as sara and save dashboard.png and compare.png into ``out``."""
    login = httpx.post(
        f"{base}/api/v1/session", json={"username": "sara", "password": PASSWORD}, timeout=10
    )
    login.raise_for_status()
    cookie = login.cookies["accord_session"]
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 900})
            context.add_cookies([{"name": "accord_session", "value": cookie, "url": base}])
            page = context.new_page()
            errors: list[str] = []
            page.on(
                "response",
                lambda r: (
                    errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            for name, path in (
                ("dashboard", "/dashboard"),
                ("compare", "/compare?a=template:billing@v1&b=template:billing@v2"),
            ):
                response = page.goto(base + path)
                if response is None or response.status != 200:
                    raise RuntimeError(f"{path} answered {response and response.status}")
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=True)
                saved.append(target)
            if errors:
                raise RuntimeError(f"errors on the pages: {errors}")
        finally:
            browser.close()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "northwind"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "accord",
                "demo",
                "--cases",
                str(args.cases),
                "--data",
                str(data),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with serving(data) as base:
            for path in shoot(base, args.out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
