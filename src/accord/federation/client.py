"""Signed HTTP requests to other nodes, through one injectable httpx transport."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from accord.core.crypto import NodeKey
from accord.federation.signing import sign_request

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_RESPONSE = 64 * 1024 * 1024


class PeerError(Exception):
    """A peer could not be reached, refused, or answered with something unusable.

    ``status`` is the HTTP status of a refusal, ``retry_after`` the seconds a 429 asked
    for, and ``cut`` says the answer broke off on the way (a closed connection, a read
    that timed out): a smaller one may get through."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        cut: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.cut = cut


CUT = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout)
"""Transport failures after the peer began to answer: what a middlebox cutting long
answers (or a link too slow for them) looks like."""


def _refused(url: str, response: httpx.Response) -> PeerError:
    wait = response.headers.get("retry-after", "")
    return PeerError(
        f"{url}: HTTP {response.status_code}: {response.text[:300]}",
        status=response.status_code,
        retry_after=float(wait) if wait.isdigit() else None,
    )


class PeerClient:
    def __init__(
        self,
        key: NodeKey,
        *,
        now: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.key = key
        self.now = now
        self.http = httpx.Client(transport=transport, timeout=TIMEOUT, follow_redirects=False)

    def post(self, url: str, body: bytes, *, content_type: str = "application/json") -> bytes:
        """POST a signed request; the response body, or ``PeerError`` saying what failed."""
        headers = sign_request(self.key, "POST", url, body, now=self.now())
        headers["Content-Type"] = content_type
        try:
            response = self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PeerError(
                f"{url}: {type(exc).__name__}: {exc}", cut=isinstance(exc, CUT)
            ) from exc
        if response.status_code >= 400:
            raise _refused(url, response)
        if len(response.content) > MAX_RESPONSE:
            raise PeerError(f"{url}: response of {len(response.content)} bytes is too large")
        return response.content

    def get(self, url: str) -> bytes:
        try:
            response = self.http.get(url)
        except httpx.HTTPError as exc:
            raise PeerError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _refused(url, response)
        return response.content

    def close(self) -> None:
        self.http.close()
