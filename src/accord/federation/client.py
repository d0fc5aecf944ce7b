"""Signed HTTP requests to other nodes, through one injectable httpx transport.

Every URL a node calls — a peer's, an inviting node's, one a joining node named — goes
through the SSRF guard (``accord.integrations.ssrf.check_url``) before each request,
redirects off, and the connection goes to the address that was checked. Private and
loopback addresses are refused unless ``allow_private`` is set: by tests and local
development, which run peers on 127.0.0.1, through ``ACCORD_ALLOW_PRIVATE_PEERS=1`` or
``Federation(..., allow_private_peers=True)``; off by default (issue 22, row 3).

Answers are read while streaming and refused once they pass ``MAX_RESPONSE`` (64 MiB),
before the rest is read: a peer cannot make this node hold more (issue 22, row 4).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime

import httpx

from accord.core.crypto import NodeKey
from accord.federation.signing import sign_request
from accord.integrations.ssrf import Resolver, UnsafeURL, check_url, parse_url

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_RESPONSE = 64 * 1024 * 1024
ALLOW_PRIVATE_ENV = "ACCORD_ALLOW_PRIVATE_PEERS"

log = logging.getLogger("accord.federation")


def private_peers_allowed(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether peers on private and loopback addresses may be called (tests, local
    development): ``ACCORD_ALLOW_PRIVATE_PEERS=1``. Off unless set."""
    return environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_peer_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> None:
    """Refuse (``UnsafeURL``) a peer URL this node may not call; logged."""
    try:
        if allow_private:
            parse_url(url)
        else:
            check_url(url, resolver=resolver)
    except UnsafeURL as exc:
        log.warning("peer URL refused: %s: %s", url[:200], exc)
        raise


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


def _refused(url: str, response: httpx.Response, start: bytes) -> PeerError:
    wait = response.headers.get("retry-after", "")
    reason = start.decode("utf-8", "replace")[:300]
    return PeerError(
        f"{url}: HTTP {response.status_code}: {reason}",
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
        allow_private: bool = False,
        resolver: Resolver | None = None,
        max_response: int = MAX_RESPONSE,
    ) -> None:
        self.key = key
        self.now = now
        self.allow_private = allow_private
        self.resolver = resolver
        self.max_response = max_response
        self.http = httpx.Client(
            transport=transport, timeout=TIMEOUT, follow_redirects=False, trust_env=False
        )

    def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Request:
        """The request, to the checked address (``PeerError`` when the URL is refused)."""
        try:
            if self.allow_private:
                parse_url(url)
                return self.http.build_request(method, url, content=body, headers=headers)
            target = check_url(url, resolver=self.resolver)
        except UnsafeURL as exc:
            log.warning("peer URL refused: %s: %s", url[:200], exc)
            raise PeerError(f"{url}: refused: {exc}") from exc
        return self.http.build_request(
            method,
            target.pinned_url(),
            content=body,
            headers={**headers, "Host": target.host_header},
            extensions={"sni_hostname": target.host} if target.url.scheme == "https" else {},
        )

    def _send(self, url: str, request: httpx.Request) -> bytes:
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise PeerError(
                f"{url}: {type(exc).__name__}: {exc}", cut=isinstance(exc, CUT)
            ) from exc
        try:
            if response.status_code >= 400:
                start = bytearray()
                for chunk in response.iter_bytes():  # the start of the reason, no more
                    start += chunk
                    if len(start) >= 4096:
                        break
                raise _refused(url, response, bytes(start))
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_response:
                raise self._too_large(url, int(declared))
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > self.max_response:
                    raise self._too_large(url, len(data))
            return bytes(data)
        except httpx.HTTPError as exc:
            raise PeerError(
                f"{url}: {type(exc).__name__}: {exc}", cut=isinstance(exc, CUT)
            ) from exc
        finally:
            response.close()

    def _too_large(self, url: str, size: int) -> PeerError:
        log.warning(
            "peer answer refused: %s sent more than %d bytes (%d read); stopped reading",
            url[:200],
            self.max_response,
            size,
        )
        return PeerError(
            f"{url}: the answer is larger than {self.max_response} bytes; refused unread"
        )

    def post(self, url: str, body: bytes, *, content_type: str = "application/json") -> bytes:
        """POST a signed request; the response body, or ``PeerError`` saying what failed."""
        headers = sign_request(self.key, "POST", url, body, now=self.now())
        headers["Content-Type"] = content_type
        return self._send(url, self._request("POST", url, body, headers))

    def get(self, url: str) -> bytes:
        return self._send(url, self._request("GET", url, None, {}))

    def close(self) -> None:
        self.http.close()
