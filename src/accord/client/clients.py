"""The two clients: ``AccordClient`` (httpx.Client) and ``AsyncAccordClient``
(httpx.AsyncClient). They differ only in how a request is sent; the endpoints, the
credentials and the decoding of answers are shared."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from accord import __version__
from accord.client.endpoints import Endpoints
from accord.client.errors import error_from_response
from accord.client.operation import Request

DEFAULT_TIMEOUT = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


def _link_token(portal: str | None) -> str | None:
    """A case link's token, also from its path or URL (``…/portal/<token>``)."""
    if portal is None:
        return None
    return portal.rsplit("/portal/", 1)[-1].strip()


class _Client(Endpoints):
    """Credentials, headers and answers; subclasses send."""

    def __init__(self, token: str | None, portal: str | None) -> None:
        self._token = token
        self._portal = _link_token(portal)
        self.csrf: str | None = None  # from login(), sent with every change

    def _headers(self, request: Request) -> dict[str, str]:
        headers: dict[str, str] = {}
        credential = self._portal if request.operation.portal else self._token
        if credential:
            scheme = "Portal" if request.operation.portal else "Bearer"
            headers["Authorization"] = f"{scheme} {credential}"
        if self.csrf and request.operation.method not in SAFE_METHODS:
            headers[CSRF_HEADER] = self.csrf
        return headers

    def _answer(self, request: Request, response: httpx.Response) -> Any:
        """The decoded answer: JSON, bytes for other content, ``None`` for none."""
        if response.status_code >= 400:
            raise error_from_response(response)
        result: Any = None
        if response.status_code != 204 and response.content:
            media = response.headers.get("content-type", "").split(";")[0].strip()
            is_json = media == "application/json" or media.endswith("+json")
            result = response.json() if is_json else response.content
        if request.operation.after is not None:
            request.operation.after(self, result)
        return result


def _options(base_url: str, timeout: float | httpx.Timeout) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": timeout,
        "headers": {"User-Agent": f"accord-client/{__version__}"},
    }


class AccordClient(_Client):
    """A synchronous client of one Accord node's REST API.

    ``token`` is an API token (``accord token create``), ``portal`` the token of a case
    link (or its path), for the ``portal_…`` methods. Without either, ``login()`` starts
    a member's session. ``transport`` replaces the network (tests, proxies).
    Use it as a context manager, or ``close()`` it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        portal: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(token, portal)
        self.http = httpx.Client(transport=transport, **_options(base_url, timeout))

    def _send(self, request: Request) -> Any:
        response = self.http.request(
            request.operation.method,
            request.path,
            params=request.params,
            json=request.json,
            headers=self._headers(request),
        )
        return self._answer(request, response)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncAccordClient(_Client):
    """The same API as ``AccordClient``, every method a coroutine; ``aclose()`` it or
    use ``async with``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        portal: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(token, portal)
        self.http = httpx.AsyncClient(transport=transport, **_options(base_url, timeout))

    async def _send(self, request: Request) -> Any:
        response = await self.http.request(
            request.operation.method,
            request.path,
            params=request.params,
            json=request.json,
            headers=self._headers(request),
        )
        return self._answer(request, response)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
