"""What an API token may do (scopes) and what each member role may grant.

A token carries a subset of its member's role's scopes, chosen when it is made; when
it is used, its scopes are intersected with the role's *current* scopes, so demoting
a member narrows their tokens at once. Leads have the same scopes as agents: what sets
them apart (escalations, reassignment) is decided by the services, not by token scope.
"""

from __future__ import annotations

from typing import Final, Literal

CASES_READ: Final = "cases:read"
CASES_WRITE: Final = "cases:write"
NOTES_READ: Final = "notes:read"
NOTES_WRITE: Final = "notes:write"
MEMBERS_ADMIN: Final = "members:admin"
TOKENS_ADMIN: Final = "tokens:admin"
CHANNELS_ADMIN: Final = "channels:admin"
INBOUND_WRITE: Final = "inbound:write"
METRICS_READ: Final = "metrics:read"
CUSTOMERS_ADMIN: Final = "customers:admin"
WORKFLOWS_ADMIN: Final = "workflows:admin"

# The vocabulary, each scope with its meaning (shown by `accord token create --help`).
SCOPES: Final[dict[str, str]] = {
    CASES_READ: "read cases, their timeline and agreed terms",
    CASES_WRITE: "open cases and act in them: post, propose, accept, mark satisfied",
    NOTES_READ: "read the node-private internal notes on cases",
    NOTES_WRITE: "add internal notes to cases",
    MEMBERS_ADMIN: "add members, change their roles, disable them",
    TOKENS_ADMIN: "list and revoke every member's API tokens",
    CHANNELS_ADMIN: "configure mailboxes and other channels (their passwords are write-only)",
    INBOUND_WRITE: "hand in messages from outside (an MTA piping mail to Accord)",
    METRICS_READ: "scrape the Prometheus metrics at /metrics (loopback needs no token)",
    CUSTOMERS_ADMIN: "export a customer's data and erase it (GDPR requests)",
    WORKFLOWS_ADMIN: "define case templates and outcome targets",
}

Role = Literal["agent", "lead", "admin"]
ROLES: Final[tuple[Role, ...]] = ("agent", "lead", "admin")

_CASEWORK = frozenset({CASES_READ, CASES_WRITE, NOTES_READ, NOTES_WRITE})
ROLE_SCOPES: Final[dict[str, frozenset[str]]] = {
    "agent": _CASEWORK,
    "lead": _CASEWORK,
    "admin": frozenset(SCOPES),
}


def role_scopes(role: str) -> frozenset[str]:
    """The scopes a member of ``role`` holds; an unknown role holds none."""
    return ROLE_SCOPES.get(role, frozenset())
