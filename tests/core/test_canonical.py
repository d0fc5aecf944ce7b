"""The canonical JSON profile: RFC 8785 bytes (``rfc8785`` is the oracle), strict parsing."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.core.canonical import (
    MAX_SAFE_INTEGER,
    canonical,
    check_profile,
    nfc,
    normalise,
    parse_canonical,
)
from accord.core.errors import AccordError, CanonicalError

# -- strategies: JSON values inside the profile ---------------------------------------------

SPECIAL_TEXT = st.sampled_from(
    [
        "",
        "Priya Shah",
        "café",
        "Ünïcödé ✓",
        "£20.00/month",
        "\u2028line\u2029separators",
        "emoji 😀🎉👩‍👩‍👧",
        "\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f",
        '"quoted" \\ back/slash',
        "日本語のテキスト",
        "\U0001d11e clef",
        "\ufeffBOM",
    ]
)
TEXT = st.one_of(
    SPECIAL_TEXT,
    st.text(max_size=30).map(lambda s: unicodedata.normalize("NFC", s)),
)
KEYS = st.text(alphabet=st.characters(max_codepoint=127), max_size=12)
INTS = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(KEYS, inner, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_canonical_matches_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_parse_canonical_round_trips(value: Any) -> None:
    data = canonical(value)
    assert parse_canonical(data) == value
    # and re-encoding what was parsed gives the very same bytes
    assert canonical(parse_canonical(data)) == data


@pytest.mark.parametrize(
    "value",
    [
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        {"b": 1, "a": [True, False, None], "A": {"z": "é", "": ""}},
        "\u2028",
        "😀",
        "\x1f",
    ],
)
def test_profile_edges_match_oracle(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)
    assert parse_canonical(canonical(value)) == value


def test_keys_sorted_and_no_whitespace() -> None:
    assert canonical({"b": 1, "a": {"d": [1, 2], "c": None}}) == b'{"a":{"c":null,"d":[1,2]},"b":1}'


# -- values outside the profile ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (1.5, "$"),
        (1.0, "$"),
        ({"amount": 20.0}, "$.amount"),
        ({"body": {"items": [1, {"price": 0.1}]}}, "$.body.items[1].price"),
        ([0, [0, [0.5]]], "$[1][1][0]"),
    ],
)
def test_floats_rejected_with_path(value: Any, where: str) -> None:
    with pytest.raises(CanonicalError, match="floats are not allowed") as info:
        canonical(value)
    assert str(info.value).startswith(f"{where}:")


@pytest.mark.parametrize(
    "value",
    [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**63, {"n": [2**64]}],
)
def test_big_integers_rejected(value: Any) -> None:
    with pytest.raises(CanonicalError, match=r"outside ±\(2\*\*53-1\)"):
        canonical(value)


def test_non_ascii_key_rejected() -> None:
    with pytest.raises(CanonicalError, match="not ASCII") as info:
        canonical({"ok": {"prïce": 1}})
    assert str(info.value).startswith("$.ok:")


def test_non_string_key_rejected() -> None:
    with pytest.raises(CanonicalError, match="not a string"):
        canonical({1: "one"})


def test_non_nfc_text_rejected() -> None:
    decomposed = "cafe\u0301"  # NFD of "café"
    assert not unicodedata.is_normalized("NFC", decomposed)
    with pytest.raises(CanonicalError, match="not NFC") as info:
        canonical({"text": decomposed})
    assert str(info.value).startswith("$.text:")
    # at the edges, nfc()/normalise() make it acceptable
    assert canonical(normalise({"text": decomposed})) == canonical({"text": "café"})
    assert nfc(decomposed) == "café"


def test_lone_surrogate_text_rejected() -> None:
    with pytest.raises(CanonicalError, match="lone surrogate"):
        canonical(["\ud800"])


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object()])
def test_non_json_types_rejected(value: Any) -> None:
    with pytest.raises(CanonicalError, match="is not a JSON value"):
        check_profile(value)


# -- strict parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b'{"a":1,}', "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"NaN", "malformed JSON"),
        (b'"\\ud800"', "malformed JSON"),  # a lone surrogate escape
        (b'"\\udc00x"', "malformed JSON"),
        (b' {"a":1}', "not byte-canonical"),
        (b'{"a":1}\n', "not byte-canonical"),
        (b'{"a": 1}', "not byte-canonical"),
        (b'{"b":1,"a":2}', "not byte-canonical"),  # keys out of order
        (b'{"a":1,"a":1}', "not byte-canonical"),  # duplicate keys
        (b'"\\u00e9"', "not byte-canonical"),  # escape where RFC 8785 writes the character
        (b'"\\/"', "not byte-canonical"),
        (b'"\\u001F"', "not byte-canonical"),  # upper-case hex escape
        (b"-0", "not byte-canonical"),
        (b"1.0", "floats are not allowed"),
        (b"1e2", "floats are not allowed"),
        (b'{"x":[0.5]}', "floats are not allowed"),
        (b"9007199254740992", "outside"),
        (b"18446744073709551616", "floats are not allowed"),  # orjson reads it as a float
        (b'{"pr\xc3\xafce":1}', "not ASCII"),
        (b'"cafe\xcc\x81"', "not NFC"),
    ],
)
def test_parse_rejects(data: bytes, match: str) -> None:
    with pytest.raises(CanonicalError, match=match):
        parse_canonical(data)


@pytest.mark.parametrize("depth", [300, 600])
def test_parse_rejects_deep_nesting_with_canonical_error(depth: int) -> None:
    with pytest.raises(AccordError):
        parse_canonical(b"[" * depth + b"]" * depth)


def test_canonical_rejects_deep_nesting_with_canonical_error() -> None:
    value: list[Any] = []
    for _ in range(300):
        value = [value]
    with pytest.raises(CanonicalError):
        canonical(value)


def test_nesting_is_allowed_up_to_the_limit_and_refused_beyond() -> None:
    from accord.core.canonical import MAX_NESTING

    data = b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1)
    assert canonical(parse_canonical(data)) == data
    deeper = b"[" + data + b"]"
    with pytest.raises(CanonicalError, match="nested more than"):
        parse_canonical(deeper)
