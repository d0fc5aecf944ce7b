"""The signed event envelope: build, parse strictly, and carry on the wire.

An event is canonical JSON (see ``canonical``) whose id is the SHA-256 of those
bytes; the author node's Ed25519 signature travels *beside* it. On the wire and in
bundles each event is one line, ``{"event":<canonical event>,"sig":"<base64url>"}``
— itself canonical JSON, so the event's exact bytes are recovered by slicing,
never by re-encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from accord.core.bodies import SLUG, check_body
from accord.core.canonical import canonical, normalise, parse_canonical
from accord.core.crypto import NodeKey, event_id, is_event_id, is_public_key, verify_event_signature
from accord.core.errors import CanonicalError, EventFormatError, IntegrityError, WrongCaseError
from accord.core.timefmt import format_time, parse_time

VERSION = 1
GENESIS = "case.opened"
ENVELOPE = frozenset(
    {"v", "case", "type", "author", "seq", "prev", "parents", "depth", "time", "body"}
)
AUTHOR_FIELDS = frozenset({"node", "member", "via", "for", "session"})
CHANNELS = frozenset(
    {
        "email",
        "webchat",
        "portal",
        "whatsapp",
        "messenger",
        "instagram",
        "telegram",
        "x",
        "sms",
        "api",
        "phone",
        "cli",
        "web",
        "import",
    }
)
MAX_PARENTS = 64
MAX_EVENT_BYTES = 1_000_000
_SIG = re.compile(rb"^[A-Za-z0-9_-]{86}$")
_WIRE_HEAD = b'{"event":'
_WIRE_SIG = b',"sig":"'


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote an event: the signing node, the person on it, and how it arrived."""

    node: str
    member: str
    via: str | None = None
    for_party: str | None = None  # a hosted party this node acts for (portal only)
    session: str | None = None  # reference to the hosted party's verified session

    def to_json(self) -> dict[str, str]:
        out = {"node": self.node, "member": self.member}
        for key, value in (("via", self.via), ("for", self.for_party), ("session", self.session)):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Event:
    """A verified event. ``raw`` is its canonical bytes; ``sig`` is carried beside it."""

    id: str
    case: str  # the genesis event's ``case`` is null in the JSON; here it is its own id
    type: str
    author: Author
    seq: int
    prev: str | None
    parents: tuple[str, ...]
    depth: int
    time: str
    body: dict[str, Any]
    raw: bytes
    sig: str

    @property
    def key(self) -> tuple[int, str]:
        """The position in the deterministic order: (depth, id)."""
        return (self.depth, self.id)

    @property
    def is_genesis(self) -> bool:
        return self.type == GENESIS

    def wire(self) -> bytes:
        return wire_line(self.raw, self.sig)


def wire_line(raw: bytes, sig: str) -> bytes:
    return _WIRE_HEAD + raw + _WIRE_SIG + sig.encode("ascii") + b'"}'


def create_event(
    key: NodeKey,
    *,
    case: str | None,
    type: str,
    member: str,
    seq: int,
    prev: str | None,
    parents: list[str] | tuple[str, ...],
    depth: int,
    time: datetime | str,
    body: dict[str, Any],
    via: str | None = None,
    for_party: str | None = None,
    session: str | None = None,
) -> Event:
    """Build, normalise (NFC), check and sign a new event authored by ``key``'s node."""
    author = Author(key.public, member, via, for_party, session)
    obj = {
        "v": VERSION,
        "case": case,
        "type": type,
        "author": author.to_json(),
        "seq": seq,
        "prev": prev,
        "parents": sorted(parents),
        "depth": depth,
        "time": time if isinstance(time, str) else format_time(time),
        "body": normalise(body),
    }
    _check_envelope(obj)
    raw = canonical(obj)
    eid = event_id(raw)
    return _build(obj, raw, eid, key.sign_event_id(eid))


def parse_event(raw: bytes, sig: str, *, case: str | None = None, verify: bool = True) -> Event:
    """Parse canonical bytes into an ``Event``, checking shape, hash and signature.

    ``verify=False`` skips only the signature, for bytes read back from this node's
    own store where they were verified on the way in.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise EventFormatError(f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    obj = parse_canonical(raw)
    _check_envelope(obj)
    eid = event_id(raw)
    if verify:
        if not isinstance(sig, str) or not _SIG.fullmatch(sig.encode("ascii", "replace")):
            raise IntegrityError(f"event {eid}: signature is not 64 bytes of base64url")
        try:
            verify_event_signature(obj["author"]["node"], eid, sig)
        except IntegrityError as exc:
            raise IntegrityError(f"event {eid}: {exc}") from exc
    event = _build(obj, raw, eid, sig)
    if case is not None and event.case != case:
        raise WrongCaseError(f"event {eid} belongs to case {event.case}, not {case}")
    return event


def load_trusted(raw: bytes, sig: str, eid: str) -> Event:
    """Rebuild an event this node verified when it arrived (read back from its store).

    Skips every check: the store only ever holds events that passed ``parse_event``.
    """
    return _build(orjson.loads(raw), raw, eid, sig)


def parse_wire(line: bytes, *, case: str | None = None, verify: bool = True) -> Event:
    """Parse one ``{"event":…,"sig":"…"}`` line; its bytes must be canonical too."""
    line = line.rstrip(b"\n")
    if not (line.startswith(_WIRE_HEAD) and line.endswith(b'"}')):
        raise CanonicalError('a wire event is {"event":<event>,"sig":"<signature>"}')
    cut = line.rfind(_WIRE_SIG)
    if cut < 0:
        raise CanonicalError('a wire event is {"event":<event>,"sig":"<signature>"}')
    sig = line[cut + len(_WIRE_SIG) : -2]
    if not _SIG.fullmatch(sig):
        raise IntegrityError("signature is not 64 bytes of base64url")
    return parse_event(line[len(_WIRE_HEAD) : cut], sig.decode("ascii"), case=case, verify=verify)


def _build(obj: dict[str, Any], raw: bytes, eid: str, sig: str) -> Event:
    a = obj["author"]
    author = Author(a["node"], a["member"], a.get("via"), a.get("for"), a.get("session"))
    return Event(
        id=eid,
        case=obj["case"] if obj["case"] is not None else eid,
        type=obj["type"],
        author=author,
        seq=obj["seq"],
        prev=obj["prev"],
        parents=tuple(obj["parents"]),
        depth=obj["depth"],
        time=obj["time"],
        body=obj["body"],
        raw=raw,
        sig=sig,
    )


def _check_envelope(obj: Any) -> None:
    if not isinstance(obj, dict):
        raise EventFormatError("an event is a JSON object")
    if missing := sorted(ENVELOPE - set(obj)):
        raise EventFormatError(f"event lacks field {missing[0]!r}")
    if extra := sorted(set(obj) - ENVELOPE):
        raise EventFormatError(f"event has unknown field {extra[0]!r}")
    if type(obj["v"]) is not int or obj["v"] != VERSION:
        raise EventFormatError(f"event format version {obj['v']!r} is not supported")
    if not isinstance(obj["type"], str):
        raise EventFormatError("type must be a string")
    _check_author(obj["author"])
    seq, prev, parents, depth = obj["seq"], obj["prev"], obj["parents"], obj["depth"]
    for name, value in (("seq", seq), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EventFormatError(f"{name} must be a positive integer")
    if not isinstance(parents, list) or len(parents) > MAX_PARENTS:
        raise EventFormatError(f"parents must be a list of at most {MAX_PARENTS} event ids")
    if not all(is_event_id(p) for p in parents):
        raise EventFormatError("parents must be event ids (sha256:…)")
    if parents != sorted(set(parents)):
        raise EventFormatError("parents must be sorted and distinct")
    if (seq == 1) != (prev is None):
        raise EventFormatError("prev is null exactly when seq is 1")
    if prev is not None and not is_event_id(prev):
        raise EventFormatError("prev must be an event id (sha256:…)")
    try:
        parse_time(obj["time"])
    except ValueError as exc:
        raise EventFormatError(f"time: {exc}") from exc
    if obj["type"] == GENESIS:
        if obj["case"] is not None or parents or seq != 1 or depth != 1:
            raise EventFormatError(
                "case.opened starts a case: case null, seq 1, no parents, depth 1"
            )
    else:
        if not is_event_id(obj["case"]):
            raise EventFormatError("case must be the case id (sha256:…)")
        if not parents:
            raise EventFormatError("only case.opened may have no parents")
        if depth < 2:
            raise EventFormatError("depth must exceed its parents' depth")
    check_body(obj["type"], obj["body"])


def _check_author(author: Any) -> None:
    if not isinstance(author, dict) or not {"node", "member"} <= set(author):
        raise EventFormatError("author must be an object with node and member")
    if extra := sorted(set(author) - AUTHOR_FIELDS):
        raise EventFormatError(f"author has unknown field {extra[0]!r}")
    if not is_public_key(author["node"]):
        raise EventFormatError("author.node must be an Ed25519 public key (ed25519:…)")
    member = author["member"]
    if not isinstance(member, str) or not member.strip() or len(member) > 200:
        raise EventFormatError("author.member must be non-empty text of at most 200 characters")
    via = author.get("via")
    if via is not None and (not isinstance(via, str) or via not in CHANNELS):
        raise EventFormatError(f"author.via {via!r} is not a known channel")
    party = author.get("for")
    if party is not None and (not isinstance(party, str) or not SLUG.fullmatch(party)):
        raise EventFormatError("author.for must be a party id")
    session = author.get("session")
    if (party is None) != (session is None):
        raise EventFormatError("author.for and author.session go together")
    if session is not None and (not isinstance(session, str) or not 1 <= len(session) <= 128):
        raise EventFormatError("author.session must be a session reference of 1 to 128 characters")
