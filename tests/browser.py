"""Debian's Chromium for the browser tests, driven by Playwright without a browser download.

``make test`` installs it (``tools/test-services.sh``); when it is missing anyway the
tests that need it fail with the command that installs it, never skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def chromium() -> str:
    """The browser's path; fails the test loudly when it is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `tools/test-services.sh` as root or "
            "`apt-get install chromium chromium-driver`",
            pytrace=False,
        )
    return CHROMIUM


def reload_live(page: Any) -> None:
    """Reload a member's page that reloads itself on a change (``data-live-reload``).

    The page's own reload, started by another party's change just before, can abort
    ours (``net::ERR_ABORTED``); reloading again then wins over it, and a fresh page
    starts its live check anew, so the next steps act on the page that stays.
    """
    from playwright.sync_api import Error

    for attempt in range(3):
        try:
            page.reload()
            return
        except Error as e:
            aborted = "ERR_ABORTED" in str(e) or "frame was detached" in str(e)
            if not aborted or attempt == 2:
                raise
