"""What a service refuses, as typed errors that map one-to-one onto HTTP statuses.

``ServiceError``
├── ``NotFound``       404: no such case, proposal, topic or activity here
├── ``Forbidden``      403: the actor may not do this (not its party, not the owner)
├── ``Invalid``        422: the input is wrong; ``field`` names where
└── ``Conflict``       409: the request is valid but the case has moved on
    └── ``StaleProposal``  the proposal's base is no longer the current agreement;
                           ``details["rebase"]`` is the same proposal on the current base
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "error"

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Invalid(ServiceError):
    status = 422
    code = "invalid"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class StaleProposal(Conflict):
    code = "stale_proposal"
