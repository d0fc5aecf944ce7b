"""Accord's canonical JSON: a strict profile of RFC 8785 (JCS).

Within the profile — no floats, integers within ±(2**53 - 1), ASCII object keys,
NFC-normalised strings without lone surrogates — orjson with sorted keys emits
exactly the RFC 8785 bytes (the ``rfc8785`` package is the oracle in the tests),
at a fraction of the cost. Parsing is strict: bytes that do not re-encode to
themselves (duplicate keys, whitespace, escapes written differently, …) are
rejected rather than normalised.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson

from accord.core.errors import CanonicalError

MAX_SAFE_INTEGER = 2**53 - 1
MAX_NESTING = 32  # no event needs more; deeper input is hostile
_SORT = orjson.OPT_SORT_KEYS


def check_profile(value: Any, path: str = "$", depth: int = 0) -> None:
    """Raise ``CanonicalError`` naming the first place ``value`` leaves the profile."""
    if depth > MAX_NESTING:
        raise CanonicalError(f"{path}: nested more than {MAX_NESTING} levels deep")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalError(f"{path}: integer {value} is outside ±(2**53-1)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path}: object key {key!r} is not a string")
            if not key.isascii():
                raise CanonicalError(f"{path}: object key {key!r} is not ASCII")
            check_profile(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_profile(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float):
        raise CanonicalError(
            f"{path}: floats are not allowed (use integer minor units or a decimal string)"
        )
    else:
        raise CanonicalError(f"{path}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"{path}: text contains a lone surrogate") from exc
    if not unicodedata.is_normalized("NFC", text):
        raise CanonicalError(f"{path}: text is not NFC-normalised")


def canonical(value: Any) -> bytes:
    """The canonical bytes of ``value``; raises ``CanonicalError`` outside the profile."""
    check_profile(value)
    return orjson.dumps(value, option=_SORT)


def parse_canonical(data: bytes) -> Any:
    """Parse bytes that must already be canonical; anything else is rejected."""
    try:
        value = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CanonicalError(f"malformed JSON: {exc}") from exc
    check_profile(value)
    if orjson.dumps(value, option=_SORT) != data:
        raise CanonicalError(
            "JSON is not byte-canonical (key order, whitespace, escapes or duplicate keys)"
        )
    return value


def nfc(text: str) -> str:
    """Normalise text arriving at the edges (forms, mail, chat) before it enters an event."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def normalise(value: Any) -> Any:
    """Recursively NFC-normalise every string in a JSON-like value."""
    if isinstance(value, str):
        return nfc(value)
    if isinstance(value, dict):
        return {nfc(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value
