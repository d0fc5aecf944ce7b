"""RFC 3339 UTC timestamps as the log writes them: ``2026-11-23T15:00:00Z`` (optional µs)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def parse_time(text: str) -> datetime:
    """Parse the log's timestamp form; ``ValueError`` for anything else."""
    if not isinstance(text, str) or not _RFC3339_UTC.fullmatch(text):
        raise ValueError(f"not an RFC 3339 UTC time like 2026-11-23T15:00:00Z: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """Write an aware datetime in the log's form (UTC, ``Z``, µs only when non-zero)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in the log; attach a time zone")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"
