"""Portal magic links: round trip, expiry, tampering, foreign secrets and fuzzed garbage."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import threading
from datetime import timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.auth.errors import LinkError, LinkExpired, LinkInvalid, LinkRequestError
from accord.auth.portal import DOMAIN, PortalLinks, load_or_create_secret, session_ref
from accord.core.crypto import b64u
from accord.store.database import Database
from accord.store.secrets import Secrets

from .helpers import FakeClock

SECRET = bytes(range(32))
CASE = "sha256:" + "ab" * 32
FUZZ = settings(max_examples=300, deadline=None)


def make(clock: FakeClock | None = None, secret: bytes = SECRET) -> PortalLinks:
    return PortalLinks(secret, now=clock or FakeClock())


def signed(payload: bytes, secret: bytes = SECRET) -> str:
    """A token whose MAC is right for ``payload``, whatever the payload holds."""
    return b64u(payload) + "." + b64u(hmac.new(secret, DOMAIN + payload, hashlib.sha256).digest())


def test_round_trip(clock: FakeClock) -> None:
    links = make(clock)
    token = links.issue(CASE, "customer", "  priya@example.com ", timedelta(hours=72))
    grant = links.verify(token)
    assert (grant.case_id, grant.party_id, grant.identity) == (
        CASE,
        "customer",
        "priya@example.com",
    )
    assert grant.expires_at == clock() + timedelta(hours=72)
    assert grant.session_ref == session_ref(token) and len(grant.session_ref) == 32
    assert token not in grant.session_ref
    assert links.verify(token) == grant  # stable reference for the same link
    again = links.issue(CASE, "customer", "priya@example.com", timedelta(hours=72))
    assert again != token and links.verify(again).session_ref != grant.session_ref  # nonce
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert orjson.loads(payload).keys() == {"case", "party", "identity", "exp", "nonce"}
    assert payload == orjson.dumps(orjson.loads(payload), option=orjson.OPT_SORT_KEYS)


def test_expired_links_say_so(clock: FakeClock) -> None:
    links = make(clock)
    token = links.issue(CASE, "customer", "+441632960961", timedelta(hours=1))
    clock.advance(minutes=59, seconds=59)
    assert links.verify(token).identity == "+441632960961"
    clock.advance(seconds=1)
    with pytest.raises(LinkExpired) as caught:
        links.verify(token)
    assert caught.value.expired_at == clock()
    assert "ask for a new one" in str(caught.value)


def test_a_tampered_payload_is_invalid(clock: FakeClock) -> None:
    links = make(clock)
    token = links.issue(CASE, "customer", "priya@example.com", timedelta(hours=1))
    encoded, mac = token.split(".")
    fields = orjson.loads(base64.urlsafe_b64decode(encoded + "=="))
    for change in ({"party": "supplier"}, {"identity": "eve@example.com"}, {"exp": 2**40}):
        forged = orjson.dumps({**fields, **change}, option=orjson.OPT_SORT_KEYS)
        with pytest.raises(LinkInvalid, match="altered"):
            links.verify(b64u(forged) + "." + mac)
    clock.advance(hours=2)  # an altered expired link is invalid, not "expired"
    with pytest.raises(LinkInvalid):
        links.verify(b64u(orjson.dumps({**fields, "party": "x"})) + "." + mac)


def test_a_tampered_signature_is_invalid() -> None:
    links = make()
    token = links.issue(CASE, "customer", "priya@example.com", timedelta(hours=1))
    encoded, mac = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(mac + "="))
    raw[0] ^= 1
    for bad in (b64u(bytes(raw)), mac[:-2], mac + "AA", "", b64u(bytes(32))):
        with pytest.raises(LinkInvalid):
            links.verify(f"{encoded}.{bad}")
    last = mac[-1]  # a non-canonical spelling of the same MAC (unused low bits set)
    alias = (
        mac[:-1]
        + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(last) ^ 1
        ]
    )
    with pytest.raises(LinkInvalid):
        links.verify(f"{encoded}.{alias}")


def test_another_secret_is_refused() -> None:
    token = make().issue(CASE, "customer", "priya@example.com", timedelta(hours=1))
    with pytest.raises(LinkInvalid):
        make(secret=bytes(32)).verify(token)


def test_authentic_but_malformed_payloads_are_invalid() -> None:
    links = make()
    good = {"case": CASE, "party": "customer", "identity": "p@x", "exp": 2**33, "nonce": "n"}
    for payload in (
        b"not json",
        b"[]",
        orjson.dumps({**good, "extra": 1}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps(good),  # not in sorted-key canonical form
        orjson.dumps({**good, "exp": True}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps({**good, "exp": 2**60}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps({**good, "exp": -1}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps({**good, "case": "sha256:xyz"}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps({**good, "party": "Not A Slug"}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps({**good, "identity": ""}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps({**good, "nonce": 5}, option=orjson.OPT_SORT_KEYS),
    ):
        with pytest.raises(LinkInvalid):
            links.verify(signed(payload))
    assert links.verify(signed(orjson.dumps(good, option=orjson.OPT_SORT_KEYS))).party_id


def test_issue_refuses_bad_arguments() -> None:
    links = make()
    day = timedelta(days=1)
    for args in (
        ("sha256:short", "customer", "p@x", day),
        (CASE, "Customer!", "p@x", day),
        (CASE, "customer", "  ", day),
        (CASE, "customer", "p@\nx", day),
        (CASE, "customer", "x" * 321, day),
        (CASE, "customer", "p@x", timedelta(0)),
        (CASE, "customer", "p@x", timedelta(days=367)),
    ):
        with pytest.raises(LinkRequestError):
            links.issue(*args)
    with pytest.raises(ValueError, match="32 bytes"):
        PortalLinks(b"short")


@FUZZ
@given(st.text(max_size=600))
def test_arbitrary_text_raises_only_link_invalid(text: str) -> None:
    with pytest.raises(LinkInvalid):
        make().verify(text)


@FUZZ
@given(st.binary(max_size=300), st.binary(max_size=40))
def test_arbitrary_parts_raise_only_link_errors(payload: bytes, mac: bytes) -> None:
    with pytest.raises(LinkInvalid):
        make().verify(b64u(payload) + "." + b64u(mac))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELD = st.sampled_from([CASE, "customer", "p@x", 2**33, 0, -5, True, None, "", "Bad Slug"])
NEAR_VALID = st.fixed_dictionaries(
    {"case": FIELD, "party": FIELD, "identity": FIELD, "exp": FIELD, "nonce": FIELD | JSON},
    optional={"extra": JSON},
)


@FUZZ
@given(
    st.binary(max_size=400)
    | st.builds(orjson.dumps, JSON)
    | st.builds(lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS), NEAR_VALID)
)
def test_authentic_garbage_raises_only_link_errors(payload: bytes) -> None:
    """Even a payload with a valid MAC (a bug, a leaked secret) cannot crash verify."""
    with contextlib.suppress(LinkError):
        make().verify(signed(payload))


@FUZZ
@given(st.text(min_size=1, max_size=60).filter(lambda s: s.strip() and s.strip().isprintable()))
def test_any_printable_identity_round_trips(identity: str) -> None:
    links = make()
    assert links.verify(links.issue(CASE, "customer", identity, timedelta(hours=1))).identity


def test_the_node_secret_is_made_once_and_kept(db: Database) -> None:
    with pytest.raises(Exception, match="without the node's secrets key"):
        load_or_create_secret(db)
    db.secrets = Secrets(bytes(range(32)))  # as Node.open sets it
    first = load_or_create_secret(db)
    assert len(first) == 32
    assert load_or_create_secret(db) == first
    assert load_or_create_secret(db, "another") != first
    token = PortalLinks(first).issue(CASE, "customer", "p@x", timedelta(hours=1))
    assert PortalLinks(load_or_create_secret(db)).verify(token).party_id == "customer"


def test_concurrent_first_use_agrees_on_one_secret(db: Database) -> None:
    db.secrets = Secrets(bytes(range(32)))
    results: list[bytes] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            results.append(load_or_create_secret(db, "race"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 6 and len(set(results)) == 1
