"""Structured logs: one JSON object per line, each carrying the request id it belongs to.

Standard ``logging`` with a JSON formatter rather than a logging framework: every module
already logs through ``logging.getLogger``, and a formatter is all a JSON line needs. The
request id comes from a context variable the HTTP middleware sets (``X-Request-ID``,
taken from the reverse proxy when it sends a sane one), so a log line written anywhere
while serving a request can be matched with the access line and the proxy's own log.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: ContextVar[str | None] = ContextVar("accord_request_id", default=None)
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def new_request_id(offered: str | None) -> str:
    """The proxy's id if it looks like one, else a fresh one (never a client's free text
    in the logs)."""
    if offered and SANE_ID.fullmatch(offered):
        return offered
    return secrets.token_hex(12)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            line["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = request_id.get()
        return f"{text} [{rid}]" if rid else text


SECRET_IN_TEXT = (
    # a portal link's token: /portal/<token>[/…]
    (re.compile(r"(/portal/)[^/?#\s\"']+"), r"\1[redacted]"),
    # query parameters that carry secrets: hub.verify_token (WhatsApp, Messenger), token,
    # crc_token, secret_token, signature, password, key, …
    (
        re.compile(
            r"(?i)([?&][^=&\s\"']*(?:token|secret|signature|password|passwd|key)[^=&\s\"']*=)"
            r"[^&#\s\"']*"
        ),
        r"\1[redacted]",
    ),
)


def redact_secrets(text: str) -> str:
    """``text`` with portal-link tokens and secret query parameters replaced."""
    for pattern, replacement in SECRET_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites every record's message (uvicorn's access line among them, which carries
    the raw path and query) so no portal-link token or verify token reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact_secrets(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(fmt: str = "text", level: str = "info") -> None:
    """Send Accord's and uvicorn's logs to stderr as ``fmt`` (``json`` or ``text``), with
    secrets in paths and query strings redacted (``RedactSecrets``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Accord writes its own access line (with the request id and route): uvicorn's is noise.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
