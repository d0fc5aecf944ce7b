"""The one place a case link (portal magic link) is made for a member who asks for one.

The rule: a link lets its holder act *as a party* in the case, so a node makes links only
for a party it hosts (``hosted_by`` is this node's key) — a party another node hosts acts
through its own node, and a link from here would let a customer speak in its name. The
REST API (``POST /api/v1/cases/{id}/portal-links``), the case page ("Case link" and "Send
it to the customer") and the command line (``accord portal link``) all call
``issue_case_link``, so the check and the default lifetime are written once.

A link lives ``DEFAULT_LINK_TTL`` (7 days: long enough to answer after a weekend, short
enough that a forwarded mail stops working soon) unless the caller passes ``ttl``; the
longest is ``accord.auth.portal.MAX_TTL``. The mail channel's own links (in the mails it
sends the customer it hosts) use its own lifetime and do not come through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from accord.auth.errors import LinkRequestError
from accord.auth.portal import PortalLinks
from accord.core.state import State
from accord.service.errors import Forbidden, Invalid, NotFound

DEFAULT_LINK_TTL = timedelta(days=7)
"""How long a case link works when the caller does not say."""


@dataclass(frozen=True)
class CaseLink:
    """A case link just made: its token, the party it acts as, when it stops working."""

    token: str
    party: str
    expires_at: datetime

    @property
    def path(self) -> str:
        return f"/portal/{self.token}"


def issue_case_link(
    links: PortalLinks,
    state: State,
    party: str,
    identity: str,
    *,
    host: str,
    ttl: timedelta | None = None,
) -> CaseLink:
    """A link for ``identity`` to act as ``party`` in the case whose state is ``state``.

    ``host`` is this node's public key. ``NotFound`` when the case has no such party,
    ``Forbidden`` when this node does not host it, ``Invalid`` for an identity or lifetime
    a link cannot carry; ``ttl`` defaults to ``DEFAULT_LINK_TTL``.
    """
    parties = state["parties"]
    found = parties.get(party)
    if found is None:
        named = ", ".join(parties) or "none"
        raise NotFound(f"the case has no party {party!r} (its parties: {named})", field="party")
    if found.get("hosted_by") != host:
        raise Forbidden(
            f"party {party!r} is not hosted by this node: case links are only for parties "
            "that act through this node's portal",
            field="party",
        )
    lifetime = DEFAULT_LINK_TTL if ttl is None else ttl
    try:
        token = links.issue(state["case"], party, identity, lifetime)
    except LinkRequestError as exc:
        message = str(exc)
        field = next((f for f in ("identity", "lifetime") if f in message), None)
        raise Invalid(message, field=field) from exc
    return CaseLink(token, party, links.verify(token).expires_at)
