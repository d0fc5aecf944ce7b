"""The signed event envelope: building, strict parsing, wire form, integrity."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.core.bodies import check_body
from accord.core.crypto import NodeKey, event_id, fingerprint, is_event_id, is_public_key
from accord.core.errors import (
    AccordError,
    CanonicalError,
    EventFormatError,
    IntegrityError,
    UnknownEventType,
    ValueFormatError,
    WrongCaseError,
)
from accord.core.events import Author, Event, create_event, parse_event, parse_wire, wire_line
from accord.core.timefmt import format_time, parse_time
from tests.core.builders import (
    FIBREFIX,
    NORTHWIND,
    PRIYA,
    PRIYA_HOSTED,
    TOM,
    Broadband,
    portal,
)

SCENARIO = Broadband().agree_v1()
OPENED = SCENARIO.ev["opened"]
HELLO = SCENARIO.ev["hello"]
COUNTER = SCENARIO.ev["counter"]  # authored by Northwind's node for Priya, via the portal
SAMPLES = [OPENED, HELLO, COUNTER, SCENARIO.ev["accept_counter"]]


def obj_of(event: Event) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(event.raw)
    return loaded


def signed_line(obj: Any, key: NodeKey = NORTHWIND) -> bytes:
    """A wire line for ``obj`` as written (sorted keys, no profile check), signed by ``key``."""
    raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return wire_line(raw, key.sign_event_id(event_id(raw)))


def message_event(body: dict[str, Any], **kw: Any) -> Event:
    args: dict[str, Any] = {
        "case": OPENED.id,
        "type": "message.posted",
        "member": TOM,
        "seq": 2,
        "prev": OPENED.id,
        "parents": [OPENED.id],
        "depth": 2,
        "time": "2026-11-23T09:02:00Z",
        "body": body,
    }
    args.update(kw)
    return create_event(NORTHWIND, **args)


def event_of_type(type_: str, body: Any) -> Event:
    return message_event(body, type=type_)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_parse_event_round_trip(event: Event) -> None:
    again = parse_event(event.raw, event.sig)
    assert again == event
    assert again.id == event_id(event.raw)
    assert is_event_id(again.id)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_parse_wire_round_trip(event: Event) -> None:
    line = event.wire()
    assert line.startswith(b'{"event":') and b"\n" not in line
    # the wire line is itself canonical JSON
    assert orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS) == line
    assert parse_wire(line) == event
    assert parse_wire(line + b"\n") == event
    assert parse_wire(line, case=event.case) == event


def test_genesis_is_its_own_case() -> None:
    assert OPENED.is_genesis and OPENED.case == OPENED.id
    assert obj_of(OPENED)["case"] is None
    assert HELLO.case == OPENED.id and not HELLO.is_genesis
    assert HELLO.key == (2, HELLO.id)


def test_envelope_fields_as_built() -> None:
    obj = obj_of(COUNTER)
    assert obj["author"] == {
        "node": NORTHWIND.public,
        "member": PRIYA,
        "via": "portal",
        "for": "priya",
        "session": portal()["session"],
    }
    assert COUNTER.author == Author(NORTHWIND.public, PRIYA, "portal", "priya", portal()["session"])
    assert obj["parents"] == sorted(obj["parents"])
    assert obj["v"] == 1 and obj["seq"] == COUNTER.seq and obj["prev"] == COUNTER.prev


def test_create_normalises_text_and_time() -> None:
    when = datetime(2026, 11, 23, 16, 2, 3, tzinfo=timezone(timedelta(hours=1)))
    event = message_event({"text": "cafe\u0301 ok"}, time=when)
    assert event.body["text"] == "café ok"
    assert event.time == "2026-11-23T15:02:03Z"
    micro = message_event({"text": "x"}, time=datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC))
    assert micro.time == "2026-01-02T03:04:05.000060Z"


def test_parse_wrong_case() -> None:
    with pytest.raises(WrongCaseError, match="belongs to case"):
        parse_wire(HELLO.wire(), case="sha256:" + "0" * 64)


def test_verify_false_skips_only_signature() -> None:
    forged = wire_line(HELLO.raw, FIBREFIX.sign_event_id(HELLO.id))
    with pytest.raises(IntegrityError):
        parse_wire(forged)
    assert parse_wire(forged, verify=False).id == HELLO.id
    # but the hash and the shape are still checked
    with pytest.raises(CanonicalError):
        parse_wire(forged.replace(b'"v":1', b'"v": 1'), verify=False)


# -- envelope faults ---------------------------------------------------------------------------


def _drop(field: str) -> Any:
    def change(o: dict[str, Any]) -> None:
        del o[field]

    return change


def _set(path: str, value: Any) -> Any:
    def change(o: dict[str, Any]) -> None:
        *outer, last = path.split(".")
        target = o
        for part in outer:
            target = target[part]
        target[last] = value

    return change


def _drop_author(field: str) -> Any:
    def change(o: dict[str, Any]) -> None:
        del o["author"][field]

    return change


ENVELOPE_FAULTS: list[tuple[str, Any, str]] = [
    ("missing time", _drop("time"), "event lacks field 'time'"),
    ("missing body", _drop("body"), "event lacks field 'body'"),
    ("unknown field", _set("colour", "blue"), "event has unknown field 'colour'"),
    ("v=2", _set("v", 2), "event format version 2 is not supported"),
    ("v string", _set("v", "1"), "event format version '1' is not supported"),
    ("type not text", _set("type", 7), "type must be a string"),
    ("author not object", _set("author", "Tom"), "author must be an object with node and member"),
    ("author without member", _drop_author("member"), "author must be an object"),
    ("bad author key", _set("author.node", "ed25519:abc"), "author.node must be an Ed25519"),
    (
        "author key not ed25519",
        _set("author.node", "rsa:" + "A" * 43),
        "author.node must be an Ed25519",
    ),
    ("author unknown field", _set("author.email", "tom@x"), "author has unknown field 'email'"),
    ("author blank member", _set("author.member", "  "), "author.member must be non-empty"),
    ("unknown channel", _set("author.via", "pigeon"), "author.via 'pigeon' is not a known channel"),
    ("for without session", _set("author.for", "priya"), "author.for and author.session go"),
    ("session without for", _set("author.session", "s1"), "author.for and author.session go"),
    ("seq zero", _set("seq", 0), "seq must be a positive integer"),
    ("seq bool", _set("seq", True), "seq must be a positive integer"),
    ("depth zero", _set("depth", 0), "depth must be a positive integer"),
    ("parents not list", _set("parents", "x"), "parents must be a list"),
    ("parents not ids", _set("parents", ["sha256:abc"]), "parents must be event ids"),
    ("too many parents", _set("parents", [f"sha256:{i:064x}" for i in range(65)]), "at most 64"),
    ("prev not id", _set("prev", "sha256:XYZ"), "prev must be an event id"),
    ("seq 2 without prev", _set("prev", None), "prev is null exactly when seq is 1"),
    ("bad time", _set("time", "2026-11-23 09:02"), "time: not an RFC 3339 UTC time"),
    ("local time", _set("time", "2026-11-23T09:02:00+01:00"), "time: not an RFC 3339"),
    ("case not id", _set("case", "case-1"), "case must be the case id"),
    ("no parents", _set("parents", []), "only case.opened may have no parents"),
    ("depth 1 non-genesis", _set("depth", 1), "depth must exceed its parents' depth"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [pytest.param(c, m, id=name) for name, c, m in ENVELOPE_FAULTS],
)
def test_envelope_faults(change: Any, message: str) -> None:
    obj = obj_of(HELLO)
    change(obj)
    with pytest.raises(EventFormatError) as info:
        parse_wire(signed_line(obj))
    assert message in str(info.value)


def test_parents_unsorted_or_repeated() -> None:
    obj = obj_of(HELLO)
    pair = sorted([OPENED.id, "sha256:" + "f" * 64])
    obj["parents"] = pair
    obj["depth"] = 3
    assert isinstance(parse_wire(signed_line(obj)), Event)  # sorted and distinct: fine
    for parents in (pair[::-1], [OPENED.id, OPENED.id]):
        obj["parents"] = parents
        with pytest.raises(EventFormatError, match="parents must be sorted and distinct"):
            parse_wire(signed_line(obj))


def test_seq_one_with_prev() -> None:
    obj = obj_of(OPENED)
    obj["prev"] = HELLO.id
    with pytest.raises(EventFormatError, match="prev is null exactly when seq is 1"):
        parse_wire(signed_line(obj))


@pytest.mark.parametrize(
    ("field", "value"),
    [("parents", [HELLO.id]), ("case", HELLO.id), ("depth", 2), ("seq", 2)],
)
def test_genesis_shape(field: str, value: Any) -> None:
    obj = obj_of(OPENED)
    obj[field] = value
    if field == "seq":
        obj["prev"] = HELLO.id
    with pytest.raises(EventFormatError, match=re.escape("case.opened starts a case")):
        parse_wire(signed_line(obj))


def test_event_not_an_object() -> None:
    with pytest.raises(EventFormatError, match="an event is a JSON object"):
        parse_wire(signed_line(["not", "an", "event"]))


def test_create_event_checks_the_envelope_too() -> None:
    with pytest.raises(EventFormatError, match="prev is null exactly when seq is 1"):
        message_event({"text": "hi"}, prev=None)
    with pytest.raises(EventFormatError, match=re.escape("author.via")):
        message_event({"text": "hi"}, via="carrier-pigeon")
    with pytest.raises(EventFormatError, match=re.escape("case.opened starts a case")):
        create_event(
            NORTHWIND,
            case=None,
            type="case.opened",
            member=TOM,
            seq=1,
            prev=None,
            parents=[HELLO.id],
            depth=2,
            time="2026-11-23T09:00:00Z",
            body=OPENED.body,
        )


def test_oversized_event() -> None:
    with pytest.raises(EventFormatError, match="the limit is"):
        parse_event(b" " * 1_000_001, HELLO.sig)


# -- bodies ------------------------------------------------------------------------------------


def test_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType, match=re.escape("unknown event type 'case.closed'")):
        event_of_type("case.closed", {"text": "bye"})
    obj = obj_of(HELLO)
    obj["type"] = "message.edited"
    with pytest.raises(UnknownEventType, match=re.escape("message.edited")):
        parse_wire(signed_line(obj))


PERSON = {"kind": "person"}

BODY_FAULTS: list[tuple[str, str, Any, str]] = [
    ("message without text", "message.posted", {}, "body.text is required"),
    ("message blank", "message.posted", {"text": "  "}, "body.text must be non-empty text"),
    ("message extra", "message.posted", {"text": "x", "colour": 1}, "body.colour is not allowed"),
    ("message topic", "message.posted", {"text": "x", "topic": "New Price"}, "body.topic must be"),
    ("body not object", "message.posted", ["x"], "body must be an object"),
    (
        "visibility",
        "message.posted",
        {"text": "x", "visibility": "secret"},
        "body.visibility must be public or private",
    ),
    (
        "attachment not file",
        "message.posted",
        {"text": "", "attachments": [{"type": "text", "value": "x"}]},
        "body.attachments[0] must be a file value",
    ),
    ("topic slug", "topic.opened", {"topic": "a b", "title": "x"}, "body.topic must be a short id"),
    ("topic title", "topic.opened", {"topic": "price"}, "body.title is required"),
    ("status too long", "status.set", {"label": "x" * 65}, "at most 64 characters"),
    ("activity state", "activity.updated", {"activity": "a", "state": "agreed"}, "body.state"),
    ("rating", "party.satisfied", {"version": 1, "rating": 6}, "body.rating must be an integer"),
    ("version bool", "party.satisfied", {"version": True}, "body.version must be an integer"),
    ("reopen reason", "case.reopened", {}, "body.reason is required"),
    ("accept id", "proposal.accepted", {"proposal": "p1"}, "body.proposal must be an event id"),
    ("no changes", "proposal.made", {"base": 0, "changes": []}, "body.changes must list 1 to"),
    (
        "unknown op",
        "proposal.made",
        {"base": 0, "changes": [{"op": "terms.rewrite"}]},
        "body.changes[0].op 'terms.rewrite' is not a known change",
    ),
    (
        "callback without due",
        "proposal.made",
        {
            "base": 0,
            "changes": [
                {
                    "op": "activity.put",
                    "activity": "cb",
                    "title": "Call",
                    "owner": "northwind",
                    "kind": "callback",
                }
            ],
        },
        "body.changes[0].due is required for a callback",
    ),
    (
        "party without key",
        "proposal.made",
        {
            "base": 0,
            "changes": [{"op": "party.add", "party": {"id": "x", "name": "X", "kind": "person"}}],
        },
        "needs exactly one of node (own key) or hosted_by",
    ),
    (
        "counter_of",
        "proposal.made",
        {"base": 0, "changes": [{"op": "data.remove", "key": "k"}], "counter_of": "p"},
        "body.counter_of must be an event id",
    ),
]


@pytest.mark.parametrize(
    ("type_", "body", "message"),
    [pytest.param(t, b, m, id=name) for name, t, b, m in BODY_FAULTS],
)
def test_body_faults(type_: str, body: Any, message: str) -> None:
    with pytest.raises(EventFormatError) as info:
        event_of_type(type_, body)
    assert message in str(info.value)
    # and the same body arriving from a peer is rejected the same way
    obj = obj_of(HELLO)
    obj.update(type=type_, body=body)
    with pytest.raises(EventFormatError) as again:
        parse_wire(signed_line(obj))
    assert str(again.value) == str(info.value)


def test_case_opened_body_faults() -> None:
    body = copy.deepcopy(OPENED.body)
    body["parties"].append(dict(PRIYA_HOSTED))
    with pytest.raises(EventFormatError, match="party ids must be distinct"):
        check_body("case.opened", body)
    body = copy.deepcopy(OPENED.body)
    body["parties"][1] = {"id": "priya", "name": PRIYA, "kind": "person", "node": NORTHWIND.public}
    with pytest.raises(EventFormatError, match="a node key speaks for one party only"):
        check_body("case.opened", body)
    body = copy.deepcopy(OPENED.body)
    body["parties"] = []
    with pytest.raises(EventFormatError, match=re.escape("body.parties must list 1 to 50")):
        check_body("case.opened", body)
    body = copy.deepcopy(OPENED.body)
    body["parties"][0]["kind"] = "robot"
    with pytest.raises(EventFormatError, match=r"body.parties\[0\].kind must be one of"):
        check_body("case.opened", body)


def data_set(value: Any) -> Event:
    return event_of_type("data.set", {"key": "new-price", "value": value})


def _money(amount: Any = "20.00", currency: str = "GBP", **extra: Any) -> dict[str, Any]:
    return {"type": "money", "amount": amount, "currency": currency, **extra}


def _file(sha: str = "a" * 64, size: Any = 1) -> dict[str, Any]:
    return {"type": "file", "sha256": sha, "name": "bill.pdf", "size": size}


def _v(kind: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "value": value, **extra}


VALUE_FAULTS: list[tuple[str, Any, str]] = [
    ("money without currency", {"type": "money", "amount": "20.00"}, "body.value.currency"),
    ("money as number", _money(20), "body.value.amount"),
    ("money as float text", _money("20.001.0"), "body.value.amount"),
    ("money bad currency", _money(currency="gbp"), "body.value.currency"),
    ("money bad per", _money(per="hour"), "body.value.per"),
    ("number not numeric", _v("number", "abc"), "body.value.value"),
    ("number 1e3", _v("number", "1e3"), "body.value.value"),
    ("number bool", _v("number", True), "body.value.value"),
    ("choice not in options", _v("choice", "weekly", options=["monthly"]), "body.value.value"),
    ("choice no options", _v("choice", "a", options=[]), "body.value.options"),
    ("choice repeated", _v("choice", "a", options=["a", "a"]), "body.value.options"),
    ("bad date", _v("date", "2026-02-30"), "body.value.value"),
    ("date with time", _v("date", "2026-12-01T00:00:00Z"), "body.value.value"),
    ("bad datetime", _v("datetime", "tomorrow 3pm"), "body.value.value"),
    ("boolean as text", _v("boolean", "yes"), "body.value.value"),
    ("file sha", _file(sha="ABC"), "body.value.sha256"),
    ("file size", _file(size=-1), "body.value.size"),
    ("unknown type", _v("colour", "red"), "body.value.type"),
    ("extra field", _v("text", "x", unit="m"), "body.value.unit"),
    ("not an object", "20.00", "body.value"),
]


@pytest.mark.parametrize(
    ("value", "field"),
    [pytest.param(v, f, id=name) for name, v, f in VALUE_FAULTS],
)
def test_value_faults_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(ValueFormatError) as info:
        data_set(value)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_value_fault_inside_a_proposal_names_the_change() -> None:
    body = {
        "base": 0,
        "changes": [
            {"op": "data.remove", "key": "old"},
            {"op": "data.put", "key": "new-price", "value": {"type": "money", "amount": "20.00"}},
        ],
    }
    with pytest.raises(ValueFormatError) as info:
        event_of_type("proposal.made", body)
    assert info.value.field == "body.changes[1].value.currency"


@pytest.mark.parametrize(
    "value",
    [
        {"type": "money", "amount": "20.00", "currency": "GBP", "per": "month"},
        {"type": "money", "amount": "-0.50", "currency": "EUR"},
        {"type": "number", "value": 12, "unit": "months"},
        {"type": "number", "value": "3.141592"},
        {"type": "date", "value": "2026-12-01"},
        {"type": "datetime", "value": "2026-11-24T15:00:00Z"},
        {"type": "choice", "value": "monthly", "options": ["monthly", "yearly"]},
        {"type": "boolean", "value": False},
        {"type": "text", "value": "Flat 2, 14 Mill Lane"},
        {"type": "file", "sha256": "0" * 64, "name": "bill.pdf", "size": 0, "media_type": "a/b"},
    ],
    ids=lambda v: v["type"],
)
def test_valid_values(value: dict[str, Any]) -> None:
    assert data_set(value).body["value"] == value


def test_float_in_body_from_a_peer_is_a_canonical_error() -> None:
    obj = obj_of(HELLO)
    obj.update(type="data.set", body={"key": "k", "value": {"type": "number", "value": 12.5}})
    with pytest.raises(CanonicalError, match=r"^\$\.body\.value\.value: floats are not allowed"):
        parse_wire(signed_line(obj))
    obj["body"] = {"text": "x", "n": 1.0}
    with pytest.raises(CanonicalError, match=r"^\$\.body\.n: floats"):
        parse_wire(signed_line(obj))


def test_float_in_body_is_rejected_when_built() -> None:
    with pytest.raises(ValueFormatError, match=re.escape("body.value.value")):
        data_set({"type": "number", "value": 12.5})
    with pytest.raises(AccordError):
        event_of_type("party.satisfied", {"version": 1.0})


# -- integrity ---------------------------------------------------------------------------------


def test_signature_by_another_key() -> None:
    forged = wire_line(HELLO.raw, FIBREFIX.sign_event_id(HELLO.id))
    with pytest.raises(IntegrityError, match="signature does not verify"):
        parse_wire(forged)
    with pytest.raises(IntegrityError):
        parse_event(HELLO.raw, FIBREFIX.sign_event_id(HELLO.id))


def test_signature_over_another_event() -> None:
    with pytest.raises(IntegrityError, match="signature does not verify"):
        parse_event(HELLO.raw, OPENED.sig)


def test_signature_without_domain_separation_is_rejected() -> None:
    bare = NORTHWIND.sign(HELLO.id.encode("ascii"))
    with pytest.raises(IntegrityError):
        parse_event(HELLO.raw, bare)


@pytest.mark.parametrize("sig", ["", "A" * 85, "A" * 87, "!" * 86, "é" * 86])
def test_malformed_signature(sig: str) -> None:
    with pytest.raises(IntegrityError):
        parse_event(HELLO.raw, sig)


def _sig_span(line: bytes) -> tuple[int, int]:
    start = line.rindex(b',"sig":"') + len(b',"sig":"')
    return start, len(line) - 2


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.integers(min_value=1, max_value=255),
)
def test_any_byte_flip_is_rejected(event: Event, where: float, flip: int) -> None:
    line = bytearray(event.wire())
    start, end = _sig_span(bytes(line))
    position = int(where * len(line))
    line[position] ^= flip
    with pytest.raises(AccordError) as info:
        parse_wire(bytes(line))
    if start <= position < end:
        assert isinstance(info.value, IntegrityError)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_every_signature_byte_flip_is_an_integrity_error(event: Event) -> None:
    line = event.wire()
    start, end = _sig_span(line)
    for position in range(start, end - 1):
        for flip in (1, 2, 32, 64, 128):
            changed = bytearray(line)
            changed[position] ^= flip
            with pytest.raises(IntegrityError):
                parse_wire(bytes(changed))


B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _same_bits_variants(text: str, padding_bits: int) -> list[str]:
    """Other base64url spellings of ``text`` differing only in the unused low bits."""
    last = B64U.index(text[-1])
    keep = last >> padding_bits
    return [text[:-1] + c for i, c in enumerate(B64U) if i != last and i >> padding_bits == keep]


def test_signature_spelling_is_unique() -> None:
    variants = _same_bits_variants(HELLO.sig, 4)
    assert len(variants) == 15
    accepted = []
    for sig in variants:
        try:
            parse_wire(wire_line(HELLO.raw, sig))
        except IntegrityError:
            continue
        accepted.append(sig)
    assert accepted == []


def test_public_key_spelling_is_unique() -> None:
    variant = _same_bits_variants(NORTHWIND.public, 2)[0]
    assert variant != NORTHWIND.public
    assert fingerprint(variant) != fingerprint(NORTHWIND.public)
    body = copy.deepcopy(OPENED.body)
    body["parties"][1] = {"id": "priya", "name": PRIYA, "kind": "person", "node": variant}
    with pytest.raises(EventFormatError):
        check_body("case.opened", body)
    assert not is_public_key(variant)


# -- malformed input must fail as AccordError, never as a crash ---------------------------------


def _opened_obj(**changes: Any) -> dict[str, Any]:
    obj = obj_of(OPENED)
    for path, value in changes.items():
        _set(path.replace("__", "."), value)(obj)
    return obj


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(_opened_obj(body__topics=5), id="topics-not-a-list"),
        pytest.param(_opened_obj(author__via=["portal"]), id="via-a-list"),
        pytest.param(
            {**obj_of(HELLO), "type": "data.set", "body": {"key": "k", "value": {"type": []}}},
            id="value-type-a-list",
        ),
    ],
)
def test_malformed_shapes_are_format_errors(obj: dict[str, Any]) -> None:
    with pytest.raises(EventFormatError):
        parse_wire(signed_line(obj))


def test_version_true_is_rejected() -> None:
    with pytest.raises(EventFormatError, match="version"):
        parse_wire(signed_line(_opened_obj(v=True)))


@pytest.mark.parametrize(
    ("type_", "body"),
    [
        ("topic.opened", {"topic": "price\n", "title": "Price"}),
        ("status.set", {"label": "x"}),  # with an event time ending in a newline, below
        ("data.set", {"key": "k", "value": _money(amount="20.00\n")}),
        ("data.set", {"key": "k", "value": _money(currency="GBP\n")}),
        ("data.set", {"key": "k", "value": _v("datetime", "2026-11-24T15:00:00Z\n")}),
    ],
    ids=["slug", "event-time", "decimal", "currency", "datetime"],
)
def test_trailing_newline_is_not_accepted(type_: str, body: dict[str, Any]) -> None:
    """Format regexes must match the whole text ('$' also matches before a final newline)."""
    kw: dict[str, Any] = {"type": type_}
    if type_ == "status.set":
        kw["time"] = "2026-11-23T09:02:00Z\n"
    with pytest.raises(EventFormatError):
        message_event(body, **kw)


def test_date_must_be_calendar_form() -> None:
    with pytest.raises(ValueFormatError):
        data_set({"type": "date", "value": "2026-W49-2"})


# -- time format -------------------------------------------------------------------------------


def test_time_format() -> None:
    moment = parse_time("2026-11-23T15:00:00Z")
    assert moment == datetime(2026, 11, 23, 15, tzinfo=UTC)
    assert format_time(moment) == "2026-11-23T15:00:00Z"
    assert parse_time("2026-11-23T15:00:00.5Z").microsecond == 500000
    for bad in ("2026-11-23T15:00:00", "2026-11-23T15:00:00+00:00", "2026-11-23", 5):
        with pytest.raises(ValueError):
            parse_time(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 11, 23, 15))


def test_a_party_with_its_own_node_may_name_its_url() -> None:
    from accord.core.bodies import check_party

    party = {
        "id": "contoso",
        "name": "Contoso",
        "kind": "organisation",
        "node": NORTHWIND.public,
        "url": "https://accord.contoso.example:8443",
    }
    check_party(party, "party")
    for bad, words in (
        ({**party, "url": "ftp://contoso.example"}, "http(s) URL"),
        ({**party, "url": "https://contoso.example/\n"}, "http(s) URL"),
        (
            {
                "id": "p",
                "name": "P",
                "kind": "person",
                "hosted_by": NORTHWIND.public,
                "url": "https://x.example",
            },
            "only a party with its own node",
        ),
    ):
        with pytest.raises(EventFormatError, match=re.escape(words)):
            check_party(bad, "party")
