"""Debian's Chromium for the browser tests, driven by Playwright without a browser download.

``make test`` installs it (``tools/test-services.sh``); when it is missing anyway the
tests that need it fail with the command that installs it, never skip.
"""

from __future__ import annotations

from pathlib import Path

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
