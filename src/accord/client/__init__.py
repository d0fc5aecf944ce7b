"""A typed Python client of Accord's REST API, synchronous and asynchronous (httpx).

    from accord.client import AccordClient

    with AccordClient("https://accord.example.com", token="acc_…") as accord:
        opened = accord.open_case("Business broadband contract")
        accord.post_message(opened["case"], "We can offer a new price.")

``AsyncAccordClient`` has the same methods as coroutines. Every endpoint of
``/openapi.json`` but the node-to-node ``/federation`` ones is a method (declared once in
``accord.client.endpoints``; ``OPERATIONS`` lists them); refusals raise the exceptions of
``accord.client.errors``. See docs/client.md.
"""

from __future__ import annotations

from accord.client.clients import AccordClient, AsyncAccordClient
from accord.client.endpoints import Endpoints
from accord.client.errors import (
    AccordAPIError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    StaleProposal,
    Unauthorized,
)
from accord.client.operation import Operation

OPERATIONS: dict[str, Operation[..., object]] = {
    name: value for name, value in vars(Endpoints).items() if isinstance(value, Operation)
}
"""Every operation the clients call, by method name: ``.method`` and ``.path`` as in
``/openapi.json``."""

__all__ = [
    "OPERATIONS",
    "AccordAPIError",
    "AccordClient",
    "AsyncAccordClient",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RateLimited",
    "StaleProposal",
    "Unauthorized",
]
