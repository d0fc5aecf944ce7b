"""Every error ``accord.auth`` raises, in one place.

``AuthError``
├── ``PasswordPolicyError``   a new password is too short or too long
├── ``InvalidMemberError``    a username, role or display name is not acceptable (``field``)
├── ``DuplicateMemberError``  the username is taken
├── ``UnknownMemberError``    no member with that id or username
├── ``MemberDisabledError``   the member is disabled and may not get new credentials
├── ``ScopeError``            a scope list is empty or names a scope that does not exist
│   └── ``ScopeNotAllowed``      a token asks for scopes its member's role does not have
├── ``TokenRequestError``     a token's name or expiry is not acceptable
├── ``UnknownTokenError``     no API token with that id
└── ``LinkError``             a portal link cannot be issued or used
    ├── ``LinkRequestError``     a link cannot be issued for these arguments
    ├── ``LinkInvalid``          malformed, tampered with, or signed with another secret
    └── ``LinkExpired``          genuine, but past its expiry time

Failing to *authenticate* is not an exception: ``authenticate`` and ``lookup`` return
``None`` for a wrong password, an unknown, revoked or expired token, or an expired
session, and never say which, so a caller cannot leak it either. Portal links raise
because the portal tells a customer whose genuine link expired to ask for a new one.
"""

from __future__ import annotations

from datetime import datetime


class AuthError(Exception):
    """Base class of every error raised by ``accord.auth``."""


class PasswordPolicyError(AuthError):
    """A new password does not meet the policy (the message says how)."""


class InvalidMemberError(AuthError):
    """A member field is invalid; ``field`` names it (username, role, display_name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DuplicateMemberError(AuthError):
    """A member with this username already exists."""


class UnknownMemberError(AuthError):
    """No member has this id or username."""


class MemberDisabledError(AuthError):
    """The member is disabled: no new sessions or tokens."""


class ScopeError(AuthError):
    """A scope list is empty or names an unknown scope."""


class ScopeNotAllowed(ScopeError):
    """The member's role does not hold some of the scopes asked for; ``scopes`` lists them."""

    def __init__(self, role: str, scopes: list[str]) -> None:
        super().__init__(f"role {role!r} may not grant {', '.join(scopes)}")
        self.role = role
        self.scopes = scopes


class TokenRequestError(AuthError):
    """A token cannot be created with this name or expiry."""


class UnknownTokenError(AuthError):
    """No API token has this id."""


class LinkError(AuthError):
    """A portal link cannot be issued or used."""


class LinkRequestError(LinkError):
    """A link cannot be issued: the case id, party, identity or lifetime is not valid."""


class LinkInvalid(LinkError):
    """The link is malformed, was altered, or was not signed by this node."""


class LinkExpired(LinkError):
    """The link is genuine but expired; ``expired_at`` says when."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"this link expired at {expired_at.isoformat()}; ask for a new one")
        self.expired_at = expired_at
