"""Signed requests between nodes: a small profile of RFC 9421 HTTP Message Signatures.

Every request one node sends another carries three headers::

    Content-Digest: sha-256=:<base64 of SHA-256(body)>:
    Signature-Input: accord=("@method" "@target-uri" "content-digest");created=<unix>;
        expires=<unix>;nonce="<random>";keyid="ed25519:<public key>";alg="ed25519"
    Signature: accord=:<base64 of the Ed25519 signature>:

(``Signature-Input`` is one line on the wire.)

The signature base is built exactly as RFC 9421 §2.5 describes: one line per covered
component (``"@method": POST``, ``"@target-uri": https://…``, ``"content-digest": sha-256=…``)
and the ``"@signature-params"`` line last, lines joined by ``\\n`` with none after the last.
The method is case-sensitive and used as sent (§2.2.1); the target URI is the full URL
as sent. The digest (RFC 9530) binds the body; ``created``/``expires`` bound the time a
captured request is good for, and the nonce, remembered by the receiver until
``expires``, makes it good only once.

**Our one departure from plain RFC 9421**: the key signs ``b"accord-request-v1\\0" +
base``, not the bare base, so a request signature can never be taken for an event
signature (those sign ``b"accord-event-v1\\0" + id``) or for anything else a node key
signs. A generic RFC 9421 verifier will therefore not accept these signatures.

Why not the ``http-message-signatures`` package: the profile is small (signing and the
signature base are a few dozen lines; the strict parser and the checks about a hundred
and fifty more), it binds exactly the components and parameters we require and nothing
optional, and the package's Ed25519 support would still need our own key handling
(``NodeKey``, ``ed25519:`` key ids, the domain prefix) around it. One dependency fewer
in the code that decides whether a request comes from who it says.

The parser accepts exactly this shape (one signature labelled ``accord``, one
``sha-256`` digest, the three components once each, the five parameters once each)
and turns anything else into a typed error. Errors, all ``SignatureError``:

``SignatureError``
├── ``SignatureMissing``   a required header (Content-Digest, Signature-Input, Signature) is absent
├── ``SignatureInvalid``   malformed header, digest not the body's, wrong components or
│                          parameters, key id not an Ed25519 public key, signature does not verify
├── ``SignatureExpired``   genuine, but ``expires`` has passed, ``created`` is in the future
│                          beyond the allowed clock skew, or the lifetime is longer than allowed
└── ``SignatureReplayed``  genuine and in time, but this nonce from this node was seen before

A receiver answers all of them with 401; the message says which check failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from accord.auth.clock import Clock, system_clock
from accord.core.crypto import NodeKey, b64u, is_public_key, unb64u, verify
from accord.core.errors import IntegrityError
from accord.store.database import Database
from accord.store.tables import request_nonces

REQUEST_DOMAIN = b"accord-request-v1\0"
LABEL = "accord"
ALG = "ed25519"
COMPONENTS = ("@method", "@target-uri", "content-digest")
PARAMS = ("created", "expires", "nonce", "keyid", "alg")
DEFAULT_TTL = timedelta(minutes=5)
MAX_SKEW = timedelta(minutes=5)
MAX_TTL = timedelta(minutes=10)
NONCE_BYTES = 16  # 22 base64url characters
MIN_NONCE, MAX_NONCE = 22, 64
MAX_HEADER = 2048  # longer than any header this profile produces

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_NONCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz*")
_KEY_CHARS = _KEY_FIRST | frozenset("0123456789_-.")


class SignatureError(Exception):
    """Base class: the request's signature headers do not prove who sent it, now, once."""


class SignatureMissing(SignatureError):
    """A required signature header is absent."""


class SignatureInvalid(SignatureError):
    """The signature headers are malformed, or do not match the request or the key."""


class SignatureExpired(SignatureError):
    """The signature is genuine but outside its time window (or its window is too long)."""


class SignatureReplayed(SignatureError):
    """The signature is genuine and in time, but its nonce was already used."""


# -- signing ---------------------------------------------------------------------------


def sign_request(
    key: NodeKey,
    method: str,
    url: str,
    body: bytes,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> dict[str, str]:
    """The headers that sign a request: ``Content-Digest``, ``Signature-Input``, ``Signature``.

    ``method`` is uppercased, as httpx sends it; ``url`` must be the absolute URL the
    request goes to, exactly as sent. ``ttl`` is rounded down to whole seconds.
    """
    method = method.upper()
    if not _is_token(method):
        raise ValueError(f"not an HTTP method: {method[:40]!r}")
    if problem := _target_problem(url):
        raise ValueError(f"target URI {url[:80]!r}: {problem}")
    if "#" in url:
        raise ValueError("a URL fragment is never sent, so it cannot be signed")
    seconds = int(ttl.total_seconds())
    if seconds < 1:
        raise ValueError("ttl must be at least one second")
    created = int(_aware(now).timestamp())
    params = _Params(
        components=COMPONENTS,
        created=created,
        expires=created + seconds,
        nonce=secrets.token_urlsafe(NONCE_BYTES),
        keyid=key.public,
        alg=ALG,
    )
    digest = content_digest(body)
    base = signature_base(method, url, digest, params.serialize())
    signature = base64.b64encode(unb64u(key.sign(REQUEST_DOMAIN + base))).decode("ascii")
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params.serialize()}",
        "Signature": f"{LABEL}=:{signature}:",
    }


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def signature_base(method: str, url: str, digest: str, signature_params: str) -> bytes:
    """The RFC 9421 §2.5 signature base for this profile's components, in their order.

    ``signature_params`` is the serialized inner list, ``("@method" …);created=…``.
    Callers have checked that no value holds a line break or a non-ASCII character.
    """
    values = {"@method": method, "@target-uri": url, "content-digest": digest}
    names = _Parser(signature_params).components()
    if unknown := [name for name in names if name not in values]:
        raise SignatureInvalid(f"Signature-Input: component {unknown[0]!r} is not covered here")
    lines = [f'"{name}": {values[name]}' for name in names]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


# -- verifying -------------------------------------------------------------------------


class NonceStore(Protocol):
    """Where a receiver remembers the nonces it accepted, until they expire."""

    def seen(self, node: str, nonce: str, expires_at: datetime) -> bool:
        """Record ``(node, nonce)`` atomically; True when it was already recorded."""
        ...


def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    nonces: NonceStore,
    max_skew: timedelta = MAX_SKEW,
    max_ttl: timedelta = MAX_TTL,
) -> str:
    """Check a request's signature headers; the sending node's public key, or a typed error.

    ``method`` and ``url`` are the request's as received (the full URL the sender
    addressed, scheme and host included); ``headers`` are looked up case-insensitively.
    Checks run in this order: headers present and well formed, digest equals the
    body's, signature verifies under ``keyid``, time window, then the nonce is recorded,
    so only genuine, timely requests ever reach ``nonces``.
    """
    now = _aware(now)
    found = _find_headers(headers)
    params = _parse_signature_input(found["signature-input"])
    signature = _parse_binary_member(found["signature"], LABEL, "Signature")
    if len(signature) != 64:
        raise SignatureInvalid("Signature: an Ed25519 signature is 64 bytes")
    digest = _parse_binary_member(found["content-digest"], "sha-256", "Content-Digest")
    if not hmac.compare_digest(digest, hashlib.sha256(body).digest()):
        raise SignatureInvalid("Content-Digest does not match the request body")
    if not _is_token(method):
        raise SignatureInvalid(f"not an HTTP method: {method[:40]!r}")
    if problem := _target_problem(url):
        raise SignatureInvalid(f"target URI: {problem}")

    serialized = params.serialize()
    base = signature_base(method, url, found["content-digest"].strip(" \t"), serialized)
    try:
        verify(params.keyid, REQUEST_DOMAIN + base, b64u(signature))
    except IntegrityError as exc:
        raise SignatureInvalid(
            "signature does not verify for this method, target URI, body and key"
        ) from exc

    moment = now.timestamp()
    if params.expires <= params.created:
        raise SignatureInvalid("Signature-Input: expires must be after created")
    if params.expires - params.created > max_ttl.total_seconds():
        raise SignatureExpired(
            f"signature lifetime of {params.expires - params.created} s is longer than "
            f"the {int(max_ttl.total_seconds())} s allowed"
        )
    if params.created > moment + max_skew.total_seconds():
        raise SignatureExpired(
            f"signature created {params.created - int(moment)} s in the future; "
            "check the sending node's clock"
        )
    if params.expires <= moment:
        raise SignatureExpired(f"signature expired {int(moment) - params.expires} s ago")
    expires_at = datetime.fromtimestamp(params.expires, UTC)
    if nonces.seen(params.keyid, params.nonce, expires_at):
        raise SignatureReplayed("this request was already received (nonce seen before)")
    return params.keyid


def _find_headers(headers: Mapping[str, str]) -> dict[str, str]:
    wanted: dict[str, list[str]] = {"content-digest": [], "signature-input": [], "signature": []}
    for name, value in list(headers.items()):  # Starlette's Headers.items() keeps repeats
        if (lower := name.lower()) in wanted:
            wanted[lower].append(value)
    found = {}
    for name, values in wanted.items():
        if not values:
            raise SignatureMissing(f"the request has no {_title(name)} header")
        if len(values) > 1:
            raise SignatureInvalid(f"the request has {len(values)} {_title(name)} headers")
        if len(values[0]) > MAX_HEADER:
            raise SignatureInvalid(f"{_title(name)} header is longer than {MAX_HEADER}")
        found[name] = values[0]
    return found


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


# -- the strict Structured Fields subset (RFC 8941) this profile uses ------------------


class _Params:
    """The signature parameters of Signature-Input; ``order`` is the parameters' order."""

    __slots__ = ("alg", "components", "created", "expires", "keyid", "nonce", "order")

    def __init__(
        self,
        *,
        components: tuple[str, ...],
        created: int,
        expires: int,
        nonce: str,
        keyid: str,
        alg: str,
        order: tuple[str, ...] = PARAMS,
    ) -> None:
        self.order = order
        self.components = components
        self.created = created
        self.expires = expires
        self.nonce = nonce
        self.keyid = keyid
        self.alg = alg

    def serialize(self) -> str:
        """RFC 8941 serialization, as the ``@signature-params`` value (RFC 9421 §2.3).

        Canonical spacing, components and parameters in the order received: the base
        holds the serialization, so optional spaces a sender added do not matter.
        """
        inner = " ".join(f'"{name}"' for name in self.components)
        values: dict[str, int | str] = {
            "created": self.created,
            "expires": self.expires,
            "nonce": f'"{self.nonce}"',
            "keyid": f'"{self.keyid}"',
            "alg": f'"{self.alg}"',
        }
        return f"({inner})" + "".join(f";{name}={values[name]}" for name in self.order)


def _parse_signature_input(value: str) -> _Params:
    parser = _Parser(value.strip(" \t"))
    label = parser.key()
    if label != LABEL:
        raise SignatureInvalid(f"Signature-Input: expected one signature labelled {LABEL!r}")
    parser.expect("=")
    components = parser.components()
    raw = parser.parameters()
    if not parser.done():
        raise SignatureInvalid(
            f"Signature-Input: unexpected text at {parser.pos}; only one signature is accepted"
        )
    if sorted(components) != sorted(COMPONENTS):
        raise SignatureInvalid(
            "Signature-Input: the covered components must be exactly "
            + " ".join(f'"{name}"' for name in COMPONENTS)
        )
    if sorted(raw) != sorted(PARAMS):
        raise SignatureInvalid(
            "Signature-Input: the parameters must be exactly " + ", ".join(PARAMS)
        )
    created, expires = raw["created"], raw["expires"]
    nonce, keyid, alg = raw["nonce"], raw["keyid"], raw["alg"]
    if not isinstance(created, int) or not isinstance(expires, int):
        raise SignatureInvalid("Signature-Input: created and expires must be integers")
    if not isinstance(nonce, str) or not isinstance(keyid, str) or not isinstance(alg, str):
        raise SignatureInvalid("Signature-Input: nonce, keyid and alg must be strings")
    if created < 0 or expires < 0:
        raise SignatureInvalid("Signature-Input: created and expires must not be negative")
    if alg != ALG:
        raise SignatureInvalid(f'Signature-Input: alg must be "{ALG}"')
    if not MIN_NONCE <= len(nonce) <= MAX_NONCE or not set(nonce) <= _NONCE_CHARS:
        raise SignatureInvalid(
            f"Signature-Input: nonce must be {MIN_NONCE}-{MAX_NONCE} base64url characters"
        )
    if not is_public_key(keyid):
        raise SignatureInvalid("Signature-Input: keyid is not an Ed25519 public key")
    return _Params(
        components=components,
        created=created,
        expires=expires,
        nonce=nonce,
        keyid=keyid,
        alg=alg,
        order=tuple(raw),
    )


class _Parser:
    """A cursor over one header value; every method raises ``SignatureInvalid`` on a mismatch.

    It reads the RFC 8941 productions this profile needs: a key, an inner list of
    strings without parameters, and parameters whose values are integers or strings.
    Each step consumes at least one character or fails, so parsing is linear.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> SignatureInvalid:
        return SignatureInvalid(f"Signature-Input: {what} at position {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def done(self) -> bool:
        return self.pos == len(self.text)

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def key(self) -> str:
        start = self.pos
        if self.peek() not in _KEY_FIRST:  # peek() is "" at the end, in neither set
            raise self.fail("expected a lowercase key")
        while self.peek() in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def string(self) -> str:
        self.expect('"')
        start = self.pos
        while not self.done() and self.peek() != '"':
            char = self.peek()
            if char == "\\":
                raise self.fail("escapes are not used in this profile")
            if not " " <= char <= "~":
                raise self.fail("expected printable ASCII in a string")
            self.pos += 1
        value = self.text[start : self.pos]
        self.expect('"')
        return value

    def integer(self) -> int:
        start = self.pos
        while not self.done() and self.peek() in "0123456789":
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits or len(digits) > 15:
            raise self.fail("expected an integer of 1 to 15 digits")
        if len(digits) > 1 and digits[0] == "0":
            raise self.fail("integers have no leading zeros here")
        return int(digits)

    def components(self) -> tuple[str, ...]:
        """An inner list of component names: ``("@method" "@target-uri" …)``, no parameters."""
        self.expect("(")
        names: list[str] = []
        self.spaces()
        while self.peek() != ")":
            if names and self.text[self.pos - 1] != " ":
                raise self.fail("expected a space between components")
            names.append(self.string())
            if self.peek() == ";":
                raise self.fail("component parameters are not used in this profile")
            self.spaces()
        self.expect(")")
        if len(set(names)) != len(names):
            raise SignatureInvalid("Signature-Input: a component is listed twice")
        return tuple(names)

    def parameters(self) -> dict[str, int | str]:
        found: dict[str, int | str] = {}
        while self.peek() == ";":
            self.pos += 1
            self.spaces()
            name = self.key()
            self.expect("=")
            if name in found:
                raise SignatureInvalid(f"Signature-Input: parameter {name!r} is given twice")
            found[name] = self.string() if self.peek() == '"' else self.integer()
        return found


def _parse_binary_member(value: str, label: str, header: str) -> bytes:
    """``<label>=:<base64>:`` (one dictionary member holding a byte sequence), decoded."""
    text = value.strip(" \t")
    prefix = f"{label}=:"
    if not text.startswith(prefix) or not text.endswith(":") or len(text) <= len(prefix):
        raise SignatureInvalid(f"{header}: expected {label}=:<base64>: and nothing else")
    encoded = text[len(prefix) : -1]
    if not set(encoded) <= _B64_CHARS:
        raise SignatureInvalid(f"{header}: not base64")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise SignatureInvalid(f"{header}: not base64") from exc
    if base64.b64encode(raw).decode("ascii") != encoded:
        raise SignatureInvalid(f"{header}: not canonical padded base64")
    return raw


def _is_token(method: str) -> bool:
    return bool(method) and len(method) <= 32 and set(method) <= _TCHAR


def _target_problem(url: str) -> str | None:
    """Why ``url`` cannot be a signed target URI, or None when it can."""
    if not url or len(url) > 8192:
        return "empty or too long"
    if not all("!" <= char <= "~" for char in url):
        return "only visible ASCII characters are allowed (percent-encode the rest)"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        return "must be an absolute http or https URL with a host"
    return None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("request signing needs timezone-aware times")
    return moment.astimezone(UTC)


# -- nonce stores ----------------------------------------------------------------------


class MemoryNonceStore:
    """Nonces in a dict, for tests and single-process tools; thread-safe."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def seen(self, node: str, nonce: str, expires_at: datetime) -> bool:
        with self._lock:
            if (node, nonce) in self._seen:
                return True
            self._seen[(node, nonce)] = _aware(expires_at)
            return False

    def purge(self, before: datetime) -> int:
        """Forget nonces that expired before ``before``; how many were forgotten."""
        cutoff = _aware(before)
        with self._lock:
            old = [item for item, expires in self._seen.items() if expires < cutoff]
            for item in old:
                del self._seen[item]
            return len(old)


class DbNonceStore:
    """Nonces in the node-private ``request_nonces`` table, safe across processes.

    ``seen`` inserts ``(node, nonce)`` and lets the primary key decide: a row that
    was already there (even one a concurrent process inserted a moment ago) means a
    replay. One call in ``purge_every`` also deletes rows that expired more than
    ``PURGE_MARGIN`` ago by ``clock``; the margin keeps a nonce at least that long past
    its expiry, so a verifier whose clock lags the purger's still sees it.
    """

    PURGE_MARGIN = MAX_SKEW

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = system_clock,
        purge_every: int = 100,
    ) -> None:
        self.db = db
        self.clock = clock
        self.purge_every = purge_every
        self._calls = itertools.count(1)

    def seen(self, node: str, nonce: str, expires_at: datetime) -> bool:
        insert = (
            self.db.insert_or_ignore(request_nonces)
            .values(node=node, nonce=nonce, expires_at=_aware(expires_at))
            .returning(request_nonces.c.nonce)
        )
        with self.db.write() as conn:
            inserted = conn.execute(insert).first() is not None
        if self.purge_every > 0 and next(self._calls) % self.purge_every == 0:
            self.purge()
        return not inserted

    def purge(self, now: datetime | None = None) -> int:
        """Delete nonces that expired more than ``PURGE_MARGIN`` before ``now``; the count."""
        cutoff = _aware(now or self.clock()) - self.PURGE_MARGIN
        with self.db.write() as conn:
            return conn.execute(
                request_nonces.delete().where(request_nonces.c.expires_at < cutoff)
            ).rowcount
