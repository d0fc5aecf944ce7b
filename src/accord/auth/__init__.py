"""Members and access on one node: passwords, roles and scopes, API tokens, web sessions
and the customers' portal links. All of it is node-private and never replicated.

One idea per module: ``passwords`` (argon2id and the policy), ``members`` (``MemberStore``),
``scopes`` (the vocabulary and what each role may grant), ``tokens`` (``TokenStore``),
``sessions`` (``SessionStore``), ``portal`` (``PortalLinks``), ``clock`` (the injectable
clock) and ``errors`` (every exception, in one docstring).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on first use (PEP 562), so `accord.auth.scopes` stays light
    from accord.auth.clock import Clock, system_clock
    from accord.auth.members import Member, MemberStore
    from accord.auth.passwords import Passwords
    from accord.auth.portal import PortalGrant, PortalLinks, load_or_create_secret
    from accord.auth.sessions import NewSession, SessionGrant, SessionStore
    from accord.auth.tokens import CreatedToken, TokenGrant, TokenInfo, TokenStore

_WHERE = {
    "Clock": "accord.auth.clock",
    "CreatedToken": "accord.auth.tokens",
    "Member": "accord.auth.members",
    "MemberStore": "accord.auth.members",
    "NewSession": "accord.auth.sessions",
    "Passwords": "accord.auth.passwords",
    "PortalGrant": "accord.auth.portal",
    "PortalLinks": "accord.auth.portal",
    "SessionGrant": "accord.auth.sessions",
    "SessionStore": "accord.auth.sessions",
    "TokenGrant": "accord.auth.tokens",
    "TokenInfo": "accord.auth.tokens",
    "TokenStore": "accord.auth.tokens",
    "load_or_create_secret": "accord.auth.portal",
    "system_clock": "accord.auth.clock",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "Clock",
    "CreatedToken",
    "Member",
    "MemberStore",
    "NewSession",
    "Passwords",
    "PortalGrant",
    "PortalLinks",
    "SessionGrant",
    "SessionStore",
    "TokenGrant",
    "TokenInfo",
    "TokenStore",
    "load_or_create_secret",
    "system_clock",
]
