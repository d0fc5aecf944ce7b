"""Signed requests: round trip, every tampering, time window, replays, fuzzed headers, the doc."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.core.crypto import NodeKey, unb64u
from accord.federation.signing import (
    ALG,
    COMPONENTS,
    REQUEST_DOMAIN,
    DbNonceStore,
    MemoryNonceStore,
    SignatureError,
    SignatureExpired,
    SignatureInvalid,
    SignatureMissing,
    SignatureReplayed,
    _Params,
    content_digest,
    sign_request,
    signature_base,
    verify_request,
)
from accord.store import migrate
from accord.store.database import Database
from accord.store.tables import request_nonces

ROOT = Path(__file__).resolve().parents[2]
KEY = NodeKey(bytes(range(32)))
OTHER = NodeKey(bytes(range(1, 33)))
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
URL = "https://b.example/federation/v1/cases/sha256:" + "ab" * 32 + "/sync?since=3"
BODY = b'{"heads":{"ed25519:x":4}}'
FUZZ = settings(max_examples=400, deadline=None)


@pytest.fixture
def nonce_db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def signed(
    key: NodeKey = KEY,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    *,
    now: datetime = NOW,
    ttl: timedelta = timedelta(minutes=5),
) -> dict[str, str]:
    return sign_request(key, method, url, body, now=now, ttl=ttl)


def check(
    headers: dict[str, str],
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    *,
    now: datetime = NOW,
    nonces: MemoryNonceStore | DbNonceStore | None = None,
) -> str:
    store = MemoryNonceStore() if nonces is None else nonces
    return verify_request(method, url, headers, body, now=now, nonces=store)


def genuine(signature_input: str, *, key: NodeKey = KEY, body: bytes = BODY) -> dict[str, str]:
    """Headers whose signature is ``key``'s over whatever ``signature_input`` says.

    For checks that must hold even when the signer is genuine (shape, lifetime, …).
    """
    inner = signature_input.removeprefix("accord=")
    digest = content_digest(body)
    try:
        base = signature_base("POST", URL, digest, _canonical(inner))
    except SignatureInvalid:  # a component this profile cannot even put in a base
        base = b"unsignable"
    raw = unb64u(key.sign(REQUEST_DOMAIN + base))
    return {
        "Content-Digest": digest,
        "Signature-Input": signature_input,
        "Signature": f"accord=:{base64.b64encode(raw).decode()}:",
    }


def _canonical(inner: str) -> str:
    """The canonical serialization of an inner list with parameters (what the base holds)."""
    components = re.findall(r'"([^"]*)"', inner.split(")")[0])
    rest = re.sub(r";\s+", ";", inner.split(")", 1)[1])
    return "(" + " ".join(f'"{name}"' for name in components) + ")" + rest


def params(**changes: object) -> str:
    values: dict[str, object] = {
        "components": COMPONENTS,
        "created": 1795600800,
        "expires": 1795601100,
        "nonce": "Gk4Ue2m0zXvT9bW1qLs8Hw",
        "keyid": KEY.public,
        "alg": ALG,
    }
    values.update(changes)
    return "accord=" + _Params(**values).serialize()  # type: ignore[arg-type]


# -- round trip ------------------------------------------------------------------------


def test_round_trip() -> None:
    headers = signed()
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    assert headers["Content-Digest"] == content_digest(BODY)
    assert re.fullmatch(r"sha-256=:[A-Za-z0-9+/]{43}=:", headers["Content-Digest"])
    created = int(NOW.timestamp())
    match = re.fullmatch(
        r'accord=\("@method" "@target-uri" "content-digest"\);created=(\d+);expires=(\d+)'
        r';nonce="([A-Za-z0-9_-]{22,})";keyid="([^"]+)";alg="ed25519"',
        headers["Signature-Input"],
    )
    assert match and match.groups() == (str(created), str(created + 300), match[3], KEY.public)
    assert re.fullmatch(r"accord=:[A-Za-z0-9+/]{86}==:", headers["Signature"])
    assert check(headers) == KEY.public
    assert check({name.lower(): value for name, value in headers.items()}) == KEY.public
    assert check({name.upper(): value for name, value in headers.items()}) == KEY.public


def test_each_request_gets_a_fresh_nonce_and_an_empty_body_is_signed_too() -> None:
    first, second = signed(body=b""), signed(body=b"")
    assert first["Signature-Input"] != second["Signature-Input"]
    store = MemoryNonceStore()
    assert check(first, body=b"", nonces=store) == check(second, body=b"", nonces=store)
    with pytest.raises(SignatureInvalid, match="Content-Digest"):
        check(signed(body=b""), body=b"\0")


def test_the_method_is_uppercased_when_signing_and_case_sensitive_when_verifying() -> None:
    headers = signed(method="post")
    assert check(headers, method="POST") == KEY.public
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(headers, method="post")


def test_the_signature_base_follows_rfc_9421() -> None:
    inner = params()[len("accord=") :]
    base = signature_base("POST", URL, content_digest(BODY), inner)
    assert base.decode().split("\n") == [
        '"@method": POST',
        f'"@target-uri": {URL}',
        f'"content-digest": {content_digest(BODY)}',
        f'"@signature-params": {inner}',
    ]
    assert not base.endswith(b"\n")


def test_components_in_another_order_and_optional_spaces_still_verify() -> None:
    reordered = params(components=("content-digest", "@method", "@target-uri"))
    assert check(genuine(reordered), now=datetime.fromtimestamp(1795600900, UTC))
    spaced = params().replace("(", "(  ").replace(")", " )").replace(";", "; ")
    assert check(genuine(spaced), now=datetime.fromtimestamp(1795600900, UTC))
    first, *rest = params().split(";")
    keyid_first = ";".join([first, rest[3], *rest[:3], rest[4]])
    assert keyid_first.index("keyid") < keyid_first.index("created")
    assert check(genuine(keyid_first), now=datetime.fromtimestamp(1795600900, UTC))


# -- tampering -------------------------------------------------------------------------


def _swap_keyid(headers: dict[str, str]) -> None:
    headers["Signature-Input"] = headers["Signature-Input"].replace(KEY.public, OTHER.public)


def _edit_param(name: str, delta: int) -> object:
    def edit(headers: dict[str, str]) -> None:
        old = re.search(rf";{name}=(\d+)", headers["Signature-Input"])
        assert old
        new = f";{name}={int(old[1]) + delta}"
        headers["Signature-Input"] = headers["Signature-Input"].replace(old[0], new)

    return edit


def _flip_signature_bit(position: int) -> object:
    def flip(headers: dict[str, str]) -> None:
        raw = bytearray(base64.b64decode(headers["Signature"][len("accord=:") : -1]))
        raw[position] ^= 0x01
        headers["Signature"] = f"accord=:{base64.b64encode(bytes(raw)).decode()}:"

    return flip


def _other_digest(headers: dict[str, str]) -> None:
    headers["Content-Digest"] = content_digest(b"something else")


def _new_nonce(headers: dict[str, str]) -> None:
    headers["Signature-Input"] = re.sub(
        r'nonce="[^"]+"', 'nonce="AAAAAAAAAAAAAAAAAAAAAA"', headers["Signature-Input"]
    )


HEADER_EDITS = {
    "created earlier": _edit_param("created", -1),
    "created later": _edit_param("created", 1),
    "expires earlier": _edit_param("expires", -1),
    "expires later": _edit_param("expires", 60),
    "nonce": _new_nonce,
    "keyid swapped": _swap_keyid,
    "digest header": _other_digest,
    **{f"signature bit {i}": _flip_signature_bit(i) for i in (0, 1, 31, 32, 63)},
}


@pytest.mark.parametrize("edit", HEADER_EDITS.values(), ids=HEADER_EDITS.keys())
def test_every_header_edit_is_detected(edit: object) -> None:
    headers = signed()
    edit(headers)  # type: ignore[operator]
    with pytest.raises(SignatureInvalid):
        check(headers, now=NOW + timedelta(seconds=30))


REQUEST_EDITS = {
    "method": {"method": "PUT"},
    "path": {"url": URL.replace("/sync", "/events")},
    "query": {"url": URL.replace("since=3", "since=0")},
    "query dropped": {"url": URL.split("?")[0]},
    "host": {"url": URL.replace("b.example", "c.example")},
    "port": {"url": URL.replace("b.example", "b.example:8443")},
    "scheme": {"url": URL.replace("https://", "http://")},
    "body": {"body": BODY + b" "},
    "empty body": {"body": b""},
}


@pytest.mark.parametrize("change", REQUEST_EDITS.values(), ids=REQUEST_EDITS.keys())
def test_every_request_edit_is_detected(change: dict[str, object]) -> None:
    with pytest.raises(SignatureInvalid):
        check(signed(), **change)  # type: ignore[arg-type]


def test_a_body_swapped_with_its_digest_is_still_detected() -> None:
    headers = signed()
    headers["Content-Digest"] = content_digest(b'{"heads":{}}')
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(headers, body=b'{"heads":{}}')


def test_a_signature_for_one_host_is_not_valid_for_another() -> None:
    headers = signed(url="https://a.example/federation/v1/join")
    assert check(dict(headers), url="https://a.example/federation/v1/join") == KEY.public
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(headers, url="https://b.example/federation/v1/join")


def test_a_signature_by_another_key_under_this_keyid_fails() -> None:
    headers = signed(key=OTHER)
    _swap_keyid(headers)  # no-op: OTHER's keyid
    forged = genuine(params(), key=OTHER)  # OTHER signs a request naming KEY
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(forged, now=datetime.fromtimestamp(1795600900, UTC))


def test_an_event_signature_is_never_a_request_signature() -> None:
    """The domain prefix: the same key signing the bare base gives a different signature."""
    headers = signed()
    inner = headers["Signature-Input"].removeprefix("accord=")
    base = signature_base("POST", URL, content_digest(BODY), inner)
    bare = base64.b64encode(unb64u(KEY.sign(base))).decode()
    headers["Signature"] = f"accord=:{bare}:"
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check(headers)


# -- shapes that are refused even when genuinely signed ---------------------------------

LATER = datetime.fromtimestamp(1795600900, UTC)
SHAPES = {
    "two components": (params(components=("@method", "@target-uri")), "components"),
    "extra component": (params(components=(*COMPONENTS, "content-type")), "components"),
    "duplicate component": (
        params(components=("@method", "@method", "@target-uri", "content-digest")),
        "twice",
    ),
    "extra parameter": (params() + ';tag="x"', "parameters"),
    "duplicate parameter": (params() + ";created=1795600800", "twice"),
    "missing parameter": (params().replace(';alg="ed25519"', ""), "parameters"),
    "other alg": (params(alg="rsa-pss-sha512"), "alg"),
    "short nonce": (params(nonce="abc"), "nonce"),
    "nonce with a space": (params(nonce="a b c d e f g h i j k l m n"), "nonce"),
    "keyid not a key": (params(keyid="node-b"), "keyid"),
    "other label": (params().replace("accord=", "sig1="), "labelled"),
    "created as a string": (params().replace("created=1795600800", 'created="1"'), "integers"),
    "expires before created": (params(expires=1795600700), "after created"),
    "expires equal created": (params(expires=1795600800), "after created"),
}


@pytest.mark.parametrize(("value", "message"), SHAPES.values(), ids=SHAPES.keys())
def test_wrong_shapes_are_refused_even_when_genuinely_signed(value: str, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        check(genuine(value), now=LATER)


def test_a_second_signature_or_digest_member_is_refused() -> None:
    headers = signed()
    two = dict(headers, Signature=headers["Signature"] + ", other=:AAAA:")
    with pytest.raises(SignatureInvalid, match="Signature"):
        check(two)
    both = dict(headers)
    both["Content-Digest"] += ", sha-512=:" + base64.b64encode(bytes(64)).decode() + ":"
    with pytest.raises(SignatureInvalid, match="Content-Digest"):
        check(both)
    second = dict(headers)
    second["Signature-Input"] += ", " + headers["Signature-Input"].replace("accord=", "other=")
    with pytest.raises(SignatureInvalid, match="only one signature"):
        check(second)


def test_non_canonical_base64_is_refused() -> None:
    headers = signed()
    unpadded = dict(headers, Signature=headers["Signature"].replace("==:", ":"))
    with pytest.raises(SignatureInvalid, match="base64"):
        check(unpadded)
    urlsafe = dict(headers, **{"Content-Digest": content_digest(BODY).replace("+", "-")})
    if urlsafe["Content-Digest"] != headers["Content-Digest"]:
        with pytest.raises(SignatureInvalid, match="base64"):
            check(urlsafe)


# -- missing and repeated headers ------------------------------------------------------


@pytest.mark.parametrize("name", ["Content-Digest", "Signature-Input", "Signature"])
def test_missing_headers(name: str) -> None:
    headers = signed()
    del headers[name]
    with pytest.raises(SignatureMissing, match=name):
        check(headers)
    with pytest.raises(SignatureMissing):
        check({})


def test_a_header_given_twice_is_refused() -> None:
    headers = signed()
    headers["signature"] = headers["Signature"]
    with pytest.raises(SignatureInvalid, match="2 Signature headers"):
        check(headers)


def test_starlette_headers_are_read_case_insensitively_with_repeats() -> None:
    from starlette.datastructures import Headers

    raw = [(name.lower().encode(), value.encode()) for name, value in signed().items()]
    assert check(Headers(raw=raw)) == KEY.public  # type: ignore[arg-type]
    twice = Headers(raw=[*raw, raw[0]])
    with pytest.raises(SignatureInvalid, match="2 Content-Digest headers"):
        check(twice)  # type: ignore[arg-type]


# -- time window -----------------------------------------------------------------------


def test_expired() -> None:
    headers = signed()
    assert check(headers, now=NOW + timedelta(minutes=5) - timedelta(seconds=1))
    with pytest.raises(SignatureExpired, match="expired 0 s ago"):
        check(headers, now=NOW + timedelta(minutes=5))
    with pytest.raises(SignatureExpired, match="expired 3600 s ago"):
        check(headers, now=NOW + timedelta(minutes=65))


def test_created_in_the_future_beyond_the_skew() -> None:
    assert check(signed(now=NOW + timedelta(minutes=5)), now=NOW) == KEY.public
    with pytest.raises(SignatureExpired, match="in the future"):
        check(signed(now=NOW + timedelta(minutes=5, seconds=1)), now=NOW)
    headers = signed(now=NOW + timedelta(minutes=2))
    with pytest.raises(SignatureExpired, match="in the future"):
        verify_request(
            "POST",
            URL,
            headers,
            BODY,
            now=NOW,
            nonces=MemoryNonceStore(),
            max_skew=timedelta(minutes=1),
        )


def test_a_lifetime_longer_than_allowed() -> None:
    assert check(signed(ttl=timedelta(minutes=10))) == KEY.public
    with pytest.raises(SignatureExpired, match="longer than"):
        check(signed(ttl=timedelta(minutes=10, seconds=1)))
    with pytest.raises(SignatureExpired, match="longer than the 60 s"):
        verify_request(
            "POST",
            URL,
            signed(),
            BODY,
            now=NOW,
            nonces=MemoryNonceStore(),
            max_ttl=timedelta(minutes=1),
        )


def test_only_genuine_timely_requests_reach_the_nonce_store() -> None:
    store = MemoryNonceStore()
    headers = signed()
    with pytest.raises(SignatureExpired):
        check(headers, now=NOW + timedelta(hours=1), nonces=store)
    bad = dict(headers, Signature=signed()["Signature"])
    with pytest.raises(SignatureInvalid):
        check(bad, nonces=store)
    assert check(headers, nonces=store) == KEY.public  # the nonce was not used up


def test_bad_arguments_to_sign_request() -> None:
    for url in ("/relative", "b.example/x", "ftp://b.example/", "https:///x", "https://b ex/"):
        with pytest.raises(ValueError, match="target URI"):
            signed(url=url)
    with pytest.raises(ValueError, match="fragment"):
        signed(url=URL + "#top")
    with pytest.raises(ValueError, match="method"):
        signed(method="PO ST")
    with pytest.raises(ValueError, match="ttl"):
        signed(ttl=timedelta(milliseconds=500))
    with pytest.raises(ValueError, match="timezone-aware"):
        signed(now=datetime(2026, 11, 25, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        check(signed(), now=datetime(2026, 11, 25, 10, 0))


# -- replays ---------------------------------------------------------------------------


def test_a_replay_is_refused_by_the_memory_store() -> None:
    store = MemoryNonceStore()
    headers = signed()
    assert check(headers, nonces=store) == KEY.public
    with pytest.raises(SignatureReplayed):
        check(headers, nonces=store, now=NOW + timedelta(seconds=10))
    assert store.purge(NOW + timedelta(minutes=6)) == 1
    assert check(signed(), nonces=store) == KEY.public


def test_a_replay_is_refused_by_the_database(nonce_db: Database) -> None:
    store = DbNonceStore(nonce_db, clock=lambda: NOW)
    headers = signed()
    assert check(headers, nonces=store) == KEY.public
    with pytest.raises(SignatureReplayed, match="already received"):
        check(headers, nonces=store)
    with pytest.raises(SignatureReplayed):  # another process, the same table
        check(headers, nonces=DbNonceStore(nonce_db, clock=lambda: NOW))
    assert check(signed(), nonces=store) == KEY.public
    expires = NOW + timedelta(minutes=5)
    assert store.seen(KEY.public, "n" * 22, expires) is False
    assert store.seen(OTHER.public, "n" * 22, expires) is False  # nonces are per node
    assert store.seen(KEY.public, "n" * 22, expires) is True


def _race(db: Database, headers: dict[str, str]) -> list[str]:
    """Two threads, each with its own store and connection, verify the same request at once."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        store = DbNonceStore(db, clock=lambda: NOW)
        barrier.wait()
        try:
            outcomes.append(check(headers, nonces=store))
        except SignatureReplayed:
            outcomes.append("replayed")

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_replays_only_one_wins(nonce_db: Database) -> None:
    for _ in range(5):
        assert sorted(_race(nonce_db, signed())) == sorted([KEY.public, "replayed"])


def test_expired_nonces_are_purged_after_a_margin(nonce_db: Database) -> None:
    moment = [NOW]
    store = DbNonceStore(nonce_db, clock=lambda: moment[0], purge_every=3)
    old, fresh = NOW - timedelta(minutes=6), NOW + timedelta(minutes=5)
    assert not store.seen(KEY.public, "a" * 22, old)
    assert not store.seen(KEY.public, "b" * 22, NOW - timedelta(minutes=1))  # within margin
    assert not store.seen(KEY.public, "c" * 22, fresh)  # third call: purges
    with nonce_db.read() as conn:
        left = set(conn.execute(sa.select(request_nonces.c.nonce)).scalars())
    assert left == {"b" * 22, "c" * 22}
    assert store.purge(NOW + timedelta(minutes=20)) == 2


def test_downgrade_to_0003_removes_only_the_nonce_table(nonce_db: Database) -> None:
    config = migrate._config(nonce_db)
    with nonce_db.write() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    with nonce_db.read() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert "request_nonces" not in names and {"cases", "events", "case_snapshots"} <= names
    migrate.upgrade(nonce_db)
    assert migrate.current(nonce_db) == migrate.head()


# -- fuzzing: arbitrary header text only ever raises the typed errors --------------------

GRAMMAR = st.text(alphabet='accordsigeneprmthu@-=;:()" ,0123456789+/\\\t\n\x00é', max_size=200)
ANY_TEXT = st.one_of(st.text(max_size=300), GRAMMAR)


def _mutate(value: str, data: st.DataObject) -> str:
    for _ in range(data.draw(st.integers(1, 4))):
        if not value:
            break
        at = data.draw(st.integers(0, len(value) - 1))
        how = data.draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        char = data.draw(st.sampled_from(list('"();=:, \t0123456789aZ+/-_\\@é\n')))
        if how == "delete":
            value = value[:at] + value[at + 1 :]
        elif how == "insert":
            value = value[:at] + char + value[at:]
        elif how == "replace":
            value = value[:at] + char + value[at + 1 :]
        else:
            value = value[:at]
    return value


@FUZZ
@given(
    name=st.sampled_from(["Content-Digest", "Signature-Input", "Signature"]),
    value=ANY_TEXT,
)
def test_arbitrary_header_text_only_raises_typed_errors(name: str, value: str) -> None:
    headers = dict(signed(), **{name: value})
    with pytest.raises(SignatureError):
        check(headers)


@FUZZ
@given(data=st.data())
def test_mutated_headers_never_verify_wrongly(data: st.DataObject) -> None:
    headers = signed()
    name = data.draw(st.sampled_from(sorted(headers)))
    headers[name] = _mutate(headers[name], data)
    try:
        sender = check(headers)
    except SignatureError:
        return
    assert sender == KEY.public  # only a harmless respelling (spaces) may still verify


@FUZZ
@given(method=st.text(max_size=40), url=st.text(max_size=200), body=st.binary(max_size=64))
def test_arbitrary_method_url_and_body_only_raise_typed_errors(
    method: str, url: str, body: bytes
) -> None:
    with pytest.raises(SignatureError):
        check(signed(), method=method, url=url, body=body)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(["content-digest", "Signature-Input", "SIGNATURE", "x-other"]), ANY_TEXT
    )
)
def test_arbitrary_header_sets_only_raise_typed_errors(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        check(headers)


# -- the worked example in docs/federation.md ------------------------------------------


def test_the_documented_example_verifies() -> None:
    doc = (ROOT / "docs/federation.md").read_text()
    section = doc.split("## Signed requests", 1)[1]
    seed = re.search(r"seed `([0-9a-f]{64})`", section)
    request = re.search(r"```http\n(.*?)\n```", section, re.S)
    base_block = re.search(r"```text\n(.*?)\n```", section, re.S)
    assert seed and request and base_block
    head, body = request[1].split("\n\n", 1)
    request_line, *fields = head.split("\n")
    method, target, _version = request_line.split(" ")
    headers = dict(field.split(": ", 1) for field in fields)
    url = f"https://{headers['Host']}{target}"
    key = NodeKey(bytes.fromhex(seed[1]))
    inner = headers["Signature-Input"].removeprefix("accord=")
    created = int(re.search(r"created=(\d+)", inner)[1])  # type: ignore[index]
    assert datetime.fromtimestamp(created, UTC) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    now = datetime.fromtimestamp(created + 60, UTC)
    sender = verify_request(method, url, headers, body.encode(), now=now, nonces=MemoryNonceStore())
    assert sender == key.public
    base = signature_base(method, url, headers["Content-Digest"], inner)
    assert base.decode() == base_block[1]
    expected = base64.b64encode(unb64u(key.sign(REQUEST_DOMAIN + base))).decode()
    assert headers["Signature"] == f"accord=:{expected}:"  # Ed25519 is deterministic
