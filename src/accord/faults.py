"""Fault injection for crash tests: ``ACCORD_FAULT=<point>`` kills the process there.

Tests start a real process with the variable set to show that a process killed at that
point loses nothing and doubles nothing. Unset (always, in production) it costs one
environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "ACCORD_FAULT"


def point(name: str) -> None:
    """Die here, as ``kill -9`` would, if ``$ACCORD_FAULT`` names this point."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
