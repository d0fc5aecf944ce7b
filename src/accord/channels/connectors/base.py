"""What every platform connector provides, and the errors a webhook can get."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

MAX_AGE = timedelta(days=7)
"""A message older than this is refused as stale: longer than any platform retries a
webhook (Meta retries for up to 7 days, Telegram keeps updates 24 hours)."""


class WebhookRefused(Exception):
    """The webhook is not the platform's (forged), not readable, or too old: ``status``
    is what the platform documents or expects for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SendFailed(Exception):
    """The platform refused a message; ``retry`` says whether trying later may work
    (``after``: seconds the platform asked us to wait)."""

    def __init__(self, message: str, *, retry: bool, after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.after = after


@dataclass(frozen=True)
class Media:
    """An attachment the platform holds: fetched with ``fetch(client)`` when stored."""

    ref: str  # the platform's id or URL for it
    media_type: str
    name: str


@dataclass(frozen=True)
class Incoming:
    """A message from a customer, as the platform delivered it."""

    external_id: str
    identity_kind: str  # phone | telegram | messenger | instagram | x
    identity: str
    name: str
    text: str
    at: datetime
    media: tuple[Media, ...] = ()
    public: bool = False  # a public post (an X mention, a page comment), not a private message
    thread: tuple[str, ...] = ()  # ids of earlier messages it answers


@dataclass(frozen=True)
class Receipt:
    """What the platform says about a message we sent: sent, delivered, read or failed."""

    external_id: str
    status: str
    error: str | None = None


@dataclass
class Parsed:
    messages: list[Incoming] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """The webhook request as received: what signatures are computed over."""

    method: str
    url: str  # the full URL the platform called, query string included
    headers: dict[str, str]  # lower-cased names
    body: bytes
    query: dict[str, str]

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


class Platform(Protocol):
    name: str
    channel: str  # the case log's ``via``

    def challenge(
        self, request: Request, settings: dict[str, Any], secrets: dict[str, str]
    ) -> tuple[int, str, str]:
        """Answer a subscription check (GET): (status, content type, body)."""
        ...

    def verify(self, request: Request, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        """Raise ``WebhookRefused`` unless the request is the platform's."""
        ...

    def parse(self, request: Request, settings: dict[str, Any]) -> Parsed: ...

    def send(
        self,
        client: httpx.Client,
        settings: dict[str, Any],
        secrets: dict[str, str],
        to: str,
        text: str,
        *,
        template: str | None = None,
    ) -> str:
        """Send ``text`` (or a template) to ``to``; the platform's id of the message."""
        ...

    def fetch(
        self, client: httpx.Client, settings: dict[str, Any], secrets: dict[str, str], media: Media
    ) -> bytes: ...


def hmac_hex(secret: str, data: bytes, digest: str = "sha256") -> str:
    return hmac.new(secret.encode(), data, getattr(hashlib, digest)).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def fresh(at: datetime, now: datetime) -> None:
    if now - at > MAX_AGE:
        raise WebhookRefused(400, f"stale: a message from {at.isoformat()} is too old to accept")


def when(seconds: Any) -> datetime:
    """A platform's Unix time (seconds, or milliseconds when it is that large)."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise WebhookRefused(400, f"malformed: {seconds!r} is not a time") from None
    if value > 1e11:
        value /= 1000
    return datetime.fromtimestamp(value, UTC)


def check_response(response: httpx.Response, platform: str) -> Any:
    """The JSON of a successful answer, else ``SendFailed`` saying whether to retry."""
    if response.status_code == 429 or response.status_code >= 500:
        after = response.headers.get("retry-after")
        raise SendFailed(
            f"{platform} answered {response.status_code}",
            retry=True,
            after=float(after) if after and after.replace(".", "", 1).isdigit() else None,
        )
    if response.status_code >= 400:
        raise SendFailed(
            f"{platform} refused the message ({response.status_code}): {response.text[:300]}",
            retry=False,
        )
    try:
        return response.json()
    except ValueError:
        raise SendFailed(f"{platform} answered with no JSON", retry=False) from None
