"""Typed values of data items: text, number, money, date, datetime, choice, boolean, file.

Every value is a small JSON object with a ``type``. Money is a decimal string with an
ISO 4217 currency, never a float. ``check_value`` raises ``ValueFormatError`` naming the
offending field so an API can answer 422 with a precise message.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from accord.core.errors import ValueFormatError
from accord.core.timefmt import parse_time

VALUE_TYPES = ("text", "number", "money", "date", "datetime", "choice", "boolean", "file")
_DECIMAL = re.compile(r"^-?(0|[1-9]\d{0,17})(\.\d{1,6})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_TEXT = 10_000

_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # type: (required keys besides "type", optional keys)
    "text": ({"value"}, set()),
    "number": ({"value"}, {"unit"}),
    "money": ({"amount", "currency"}, {"per"}),
    "date": ({"value"}, set()),
    "datetime": ({"value"}, set()),
    "choice": ({"value", "options"}, set()),
    "boolean": ({"value"}, set()),
    "file": ({"sha256", "name", "size"}, {"media_type"}),
}


def check_value(value: Any, field: str = "value") -> None:
    """Validate one typed value; raise ``ValueFormatError`` naming ``field``."""
    if not isinstance(value, dict):
        raise ValueFormatError(field, "a data item value is an object with a 'type'")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ValueFormatError(f"{field}.type", f"must be one of {', '.join(VALUE_TYPES)}")
    required, optional = _FIELDS[kind]
    keys = set(value) - {"type"}
    if missing := sorted(required - keys):
        raise ValueFormatError(f"{field}.{missing[0]}", f"is required for a {kind} value")
    if extra := sorted(keys - required - optional):
        raise ValueFormatError(f"{field}.{extra[0]}", f"is not a field of a {kind} value")
    _CHECKS[kind](value, field)


def _text(value: Any, field: str, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueFormatError(field, "must be non-empty text")
    if len(value) > limit:
        raise ValueFormatError(field, f"must be at most {limit} characters")


def _decimal(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueFormatError(field, "must be an integer or a decimal string like '20.00'")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueFormatError(field, f"{value!r} is not a decimal like '20.00'")


def _check_text(v: dict[str, Any], f: str) -> None:
    _text(v["value"], f"{f}.value")


def _check_number(v: dict[str, Any], f: str) -> None:
    _decimal(v["value"], f"{f}.value")
    if "unit" in v:
        _text(v["unit"], f"{f}.unit", 32)


def _check_money(v: dict[str, Any], f: str) -> None:
    if not isinstance(v["amount"], str):
        raise ValueFormatError(f"{f}.amount", "money is a decimal string like '20.00'")
    _decimal(v["amount"], f"{f}.amount")
    if not isinstance(v["currency"], str) or not _CURRENCY.fullmatch(v["currency"]):
        raise ValueFormatError(f"{f}.currency", "must be an ISO 4217 code like 'GBP'")
    if "per" in v and v["per"] not in ("day", "week", "month", "year", "once"):
        raise ValueFormatError(f"{f}.per", "must be one of day, week, month, year, once")


def _check_date(v: dict[str, Any], f: str) -> None:
    try:
        if not isinstance(v["value"], str) or not _DATE.fullmatch(v["value"]):
            raise ValueError
        date.fromisoformat(v["value"])
    except ValueError as exc:
        raise ValueFormatError(f"{f}.value", "must be a date like 2026-12-01") from exc


def _check_datetime(v: dict[str, Any], f: str) -> None:
    try:
        parse_time(v["value"])
    except ValueError as exc:
        raise ValueFormatError(f"{f}.value", str(exc)) from exc


def _check_choice(v: dict[str, Any], f: str) -> None:
    options = v["options"]
    if not isinstance(options, list) or not options or len(options) > 100:
        raise ValueFormatError(f"{f}.options", "must list 1 to 100 options")
    for i, option in enumerate(options):
        _text(option, f"{f}.options[{i}]", 200)
    if len(set(options)) != len(options):
        raise ValueFormatError(f"{f}.options", "options must be distinct")
    if v["value"] not in options:
        raise ValueFormatError(f"{f}.value", "must be one of the options")


def _check_boolean(v: dict[str, Any], f: str) -> None:
    if not isinstance(v["value"], bool):
        raise ValueFormatError(f"{f}.value", "must be true or false")


def _check_file(v: dict[str, Any], f: str) -> None:
    if not isinstance(v["sha256"], str) or not _SHA256.fullmatch(v["sha256"]):
        raise ValueFormatError(f"{f}.sha256", "must be 64 lowercase hex digits")
    _text(v["name"], f"{f}.name", 255)
    size = v["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueFormatError(f"{f}.size", "must be a byte count")
    if "media_type" in v:
        _text(v["media_type"], f"{f}.media_type", 255)


_CHECKS = {
    "text": _check_text,
    "number": _check_number,
    "money": _check_money,
    "date": _check_date,
    "datetime": _check_datetime,
    "choice": _check_choice,
    "boolean": _check_boolean,
    "file": _check_file,
}
