"""Fixtures shared by the security tests, borrowed from the suites of what they attack."""

from tests.channels.connectors.conftest import desk, stand_in

__all__ = ["desk", "stand_in"]
