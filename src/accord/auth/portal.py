"""Portal magic links: a signed, expiring link per customer and case, no account needed.

A link token is ``base64url(payload) "." base64url(mac)`` where the payload is the
canonical JSON (sorted keys, no spaces) of ``{"case", "party", "identity", "exp",
"nonce"}`` and the mac is HMAC-SHA256 under the node's portal secret over
``b"accord-portal-v1\\0" + payload``; the prefix keeps these MACs from ever being
confused with another use of the secret. The link is self-contained (nothing stored
per link), so it is revoked only by expiry or by rotating the secret, which revokes
them all. The shared log never holds a link: events made through it carry
``session_ref``, a hash of it, as ``author.session``.

``verify`` checks the MAC (``hmac.compare_digest``) before it parses anything, and
turns everything malformed into ``LinkInvalid``; a genuine but old link raises
``LinkExpired``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from accord.auth.clock import Clock, now_utc, system_clock
from accord.auth.errors import LinkExpired, LinkInvalid, LinkRequestError
from accord.core.bodies import SLUG
from accord.core.crypto import b64u, is_event_id, unb64u
from accord.core.errors import AccordError
from accord.store import secrets as sealed
from accord.store.database import Database
from accord.store.tables import node_secrets

DOMAIN = b"accord-portal-v1\0"
PORTAL_SECRET = "portal-links"
SECRET_BYTES = 32
MAX_IDENTITY = 320  # the longest e-mail address; phone numbers and chat ids are shorter
MAX_TOKEN = 2048
_PART = re.compile(r"[A-Za-z0-9_-]+")
_KEYS = frozenset({"case", "party", "identity", "exp", "nonce"})
_MAX_EXP = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
MAX_TTL = timedelta(days=366)  # an expiring link; channels send a fresh one when needed


@dataclass(frozen=True)
class PortalGrant:
    """What a genuine, live link lets its holder do: act as ``party_id`` in ``case_id``."""

    case_id: str
    party_id: str
    identity: str
    expires_at: datetime
    session_ref: str  # for the event's author.session: refers to the link, never reveals it


def session_ref(token: str) -> str:
    """A short, stable reference to a link: the first 32 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class PortalLinks:
    """Issue and verify portal link tokens under one node secret."""

    def __init__(self, secret: bytes, *, now: Clock = system_clock) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"a portal secret needs at least {SECRET_BYTES} bytes")
        self._secret = secret
        self.now = now

    def issue(self, case_id: str, party_id: str, identity: str, ttl: timedelta) -> str:
        """A link token for ``identity`` to act as ``party_id`` in ``case_id`` for ``ttl``.

        The caller checks that the case exists and that this node hosts the party.
        """
        if not is_event_id(case_id):
            raise LinkRequestError("the case id must be a full case id (sha256:…)")
        if not SLUG.fullmatch(party_id):
            raise LinkRequestError(f"{party_id!r} is not a party id")
        who = unicodedata.normalize("NFC", identity.strip())
        if not who or len(who) > MAX_IDENTITY or not who.isprintable():
            raise LinkRequestError(f"the identity must be 1 to {MAX_IDENTITY} printable characters")
        if not timedelta(0) < ttl <= MAX_TTL:
            raise LinkRequestError(
                f"a link's lifetime must be positive and at most {MAX_TTL.days} days"
            )
        exp = int((now_utc(self.now) + ttl).timestamp())
        payload = orjson.dumps(
            {
                "case": case_id,
                "party": party_id,
                "identity": who,
                "exp": exp,
                "nonce": secrets.token_urlsafe(12),
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return f"{b64u(payload)}.{b64u(self._mac(payload))}"

    def verify(self, token: str) -> PortalGrant:
        """The grant of a genuine, unexpired link; ``LinkInvalid`` or ``LinkExpired``."""
        payload = self._authentic(token)
        fields = _parse(payload)
        expires_at = datetime.fromtimestamp(fields["exp"], UTC)
        if now_utc(self.now) >= expires_at:
            raise LinkExpired(expires_at)
        return PortalGrant(
            fields["case"], fields["party"], fields["identity"], expires_at, session_ref(token)
        )

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, DOMAIN + payload, hashlib.sha256).digest()

    def _authentic(self, token: object) -> bytes:
        """The payload bytes if the MAC holds; parses nothing before that."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 1:
            raise LinkInvalid("this is not a portal link")
        encoded, _, mac = token.partition(".")
        if not _PART.fullmatch(encoded) or not _PART.fullmatch(mac):
            raise LinkInvalid("this is not a portal link")
        try:
            payload, given = unb64u(encoded), unb64u(mac)
        except AccordError as exc:
            raise LinkInvalid("this is not a portal link") from exc
        if not hmac.compare_digest(given, self._mac(payload)):
            raise LinkInvalid("this link was altered or was not issued by this node")
        return payload


def _parse(payload: bytes) -> dict[str, Any]:
    """The fields of an authentic payload, checked as strictly as they were made."""
    try:
        fields = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise LinkInvalid("this link's content is damaged") from exc
    if (
        not isinstance(fields, dict)
        or set(fields) != _KEYS
        or orjson.dumps(fields, option=orjson.OPT_SORT_KEYS) != payload
        or not is_event_id(fields["case"])
        or not isinstance(fields["party"], str)
        or not SLUG.fullmatch(fields["party"])
        or not isinstance(fields["identity"], str)
        or not 1 <= len(fields["identity"]) <= MAX_IDENTITY
        or not isinstance(fields["nonce"], str)
        or isinstance(fields["exp"], bool)
        or not isinstance(fields["exp"], int)
        or not 0 < fields["exp"] <= _MAX_EXP
    ):
        raise LinkInvalid("this link's content is damaged")
    return fields


def load_or_create_secret(db: Database, name: str = PORTAL_SECRET) -> bytes:
    """This node's secret called ``name``, made (32 random bytes) on first use.

    Stored sealed with the node's secrets key (``accord.store.secrets``): the database
    alone does not give it away, so nobody who can only read the database can forge a
    link. Safe when two processes start at once: whoever inserts second reads the winner's.
    """
    box = sealed.of(db)
    query = sa.select(node_secrets.c.value).where(node_secrets.c.name == name)
    with db.read() as conn:
        value = conn.execute(query).scalar()
    if value is not None:
        return box.open(bytes(value))
    fresh = secrets.token_bytes(SECRET_BYTES)
    try:
        with db.write() as conn:
            value = conn.execute(query).scalar()
            if value is not None:
                return box.open(bytes(value))
            conn.execute(node_secrets.insert().values(name=name, value=box.seal(fresh)))
    except sa.exc.IntegrityError:
        with db.read() as conn:
            return box.open(bytes(conn.execute(query).scalar_one()))
    return fresh
