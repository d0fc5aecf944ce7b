"""Members and access on one node: passwords, roles and scopes, API tokens, web sessions
and the customers' portal links. All of it is node-private and never replicated.

One idea per module: ``passwords`` (argon2id and the policy), ``members`` (``MemberStore``),
``scopes`` (the vocabulary and what each role may grant), ``tokens`` (``TokenStore``),
``sessions`` (``SessionStore``), ``portal`` (``PortalLinks``), ``clock`` (the injectable
clock) and ``errors`` (every exception, in one docstring).
"""

from __future__ import annotations

from accord.auth.clock import Clock, system_clock
from accord.auth.members import Member, MemberStore
from accord.auth.passwords import Passwords
from accord.auth.portal import PortalGrant, PortalLinks, load_or_create_secret
from accord.auth.sessions import NewSession, SessionGrant, SessionStore
from accord.auth.tokens import CreatedToken, TokenGrant, TokenInfo, TokenStore

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
