"""What the API refuses, as exceptions built from its JSON answer.

``AccordAPIError``            any answer of 400 or more: ``status``, ``error``, ``message``,
│                             ``field`` (the input at fault, if any), ``details``
├── ``Unauthorized``    401   no credential, or an unknown, expired or revoked one
├── ``Forbidden``       403   the credential lacks the scope; not your party; no CSRF token
├── ``NotFound``        404   no such case, proposal, topic, activity, member or rule here
├── ``Conflict``        409   valid, but the case has moved on (already accepted, …)
│   └── ``StaleProposal``     the proposal's base is no longer the current agreement;
│                             ``rebase`` is the same proposal on the current version:
│                             ``propose(case, rebase["changes"], base=rebase["base"])``
├── ``Invalid``         422   wrong input; ``field`` names it (``changes[0].value.currency``)
└── ``RateLimited``     429   this credential's rate limit; ``retry_after`` is the whole
                              seconds after which a request will be admitted

The services answer ``{"error", "message", "field"?, "details"?}``; authentication,
rate limits and request validation answer FastAPI's ``{"detail"}``, which is mapped onto
the same attributes (a validation error's ``field`` is its first location, its list of
errors is ``details["errors"]``). Network failures are httpx's own exceptions.
"""

from __future__ import annotations

from typing import Any

import httpx

CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
    429: "rate_limited",
}


class AccordAPIError(Exception):
    """The API refused a request (status 400 or more)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.details = details or {}


class Unauthorized(AccordAPIError):
    """401: no credential, or an unknown, expired or revoked one."""


class Forbidden(AccordAPIError):
    """403: the credential may not do this."""


class NotFound(AccordAPIError):
    """404: no such thing on this node."""


class Conflict(AccordAPIError):
    """409: the request is valid but the case has moved on."""


class StaleProposal(Conflict):
    """409 ``stale_proposal``: ``rebase`` is the same proposal on the current agreement."""

    @property
    def rebase(self) -> dict[str, Any]:
        rebase: dict[str, Any] = self.details.get("rebase") or {}
        return rebase


class Invalid(AccordAPIError):
    """422: the input is wrong; ``field`` names where."""


class RateLimited(AccordAPIError):
    """429: too many requests with this credential; wait ``retry_after`` seconds."""

    def __init__(self, *args: Any, retry_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


BY_STATUS: dict[int, type[AccordAPIError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
}


def error_from_response(response: httpx.Response) -> AccordAPIError:
    """The exception for a refusal, from its status, JSON body and headers."""
    status = response.status_code
    error = CODES.get(status, "error")
    message = response.reason_phrase or f"HTTP {status}"
    field: str | None = None
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = body["error"]
        message = str(body.get("message") or message)
        field = body.get("field")
        details = body.get("details") or {}
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        message = body["detail"]
    elif isinstance(body, dict) and isinstance(body.get("detail"), list):
        errors = [e for e in body["detail"] if isinstance(e, dict)]
        message = "; ".join(f"{_location(e) or 'request'}: {e.get('msg', '')}" for e in errors)
        field = _location(errors[0]) if errors else None
        details = {"errors": body["detail"]}
    elif response.text:
        message = response.text[:500]
    if status == 429:
        return RateLimited(
            status,
            error,
            message,
            field,
            details,
            retry_after=_seconds(response.headers.get("Retry-After")),
        )
    if status == 409 and error == "stale_proposal":
        return StaleProposal(status, error, message, field, details)
    return BY_STATUS.get(status, AccordAPIError)(status, error, message, field, details)


def _location(error: dict[str, Any]) -> str | None:
    """FastAPI's ``["body", "changes", 0, "value"]`` as ``changes[0].value``."""
    parts = list(error.get("loc") or [])
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _seconds(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
