"""How a declared endpoint becomes a method of both clients.

An endpoint is declared once, as a method whose signature is the call's and whose body
is only its docstring (see ``accord.client.endpoints``)::

    @operation("POST", "/api/v1/cases/{case_id}/messages")
    def post_message(self, case_id: str, text: str, *, topic: str | None = None) -> Changed:
        \"\"\"Post a message to the other parties.\"\"\"

Arguments named in the path fill it; the others are the query string (``GET``,
``DELETE``) or the JSON body (``POST``, ``PUT``, ``PATCH``), under their own names;
``None`` means "not sent", so the server's default applies. The declaration is never
run: ``Operation`` is a descriptor that, read from an ``AccordClient``, is a method
returning the decoded answer, and read from an ``AsyncAccordClient``, a coroutine
function; mypy sees exactly those types.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

if TYPE_CHECKING:
    from accord.client.clients import AccordClient, AsyncAccordClient

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")

QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD"})
CASE_PREFIX = "/api/v1/cases/{case_id}"
PORTAL_PREFIX = "/api/v1/portal"
After = Callable[[Any, Any], None]


@dataclass(frozen=True)
class Request:
    """One call, ready to send."""

    operation: Operation[Any, Any]
    path: str
    params: dict[str, Any]
    json: dict[str, Any] | None


class Operation(Generic[P, R]):
    """One endpoint of the API: ``method`` and ``path`` as in ``/openapi.json``."""

    name: str

    def __init__(
        self,
        method: str,
        path: str,
        signature: inspect.Signature,
        doc: str | None,
        *,
        query: tuple[str, ...] | None = None,
        after: After | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.signature = signature
        self.__doc__ = doc
        self.after = after
        names = list(signature.parameters)
        self.path_names = tuple(re.findall(r"{(\w+)}", path))
        if missing := [n for n in self.path_names if n not in names]:
            raise TypeError(f"{method} {path}: the declaration has no argument {missing[0]!r}")
        rest = [n for n in names if n not in self.path_names]
        if query is None:
            query = tuple(rest) if self.method in QUERY_METHODS else ()
        self.query_names = query
        self.body_names = tuple(n for n in rest if n not in query)
        self.portal = path.startswith(PORTAL_PREFIX)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def request(self, *args: Any, **kwargs: Any) -> Request:
        """The call for these arguments (``TypeError`` if they do not fit the signature)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        path = self.path.format(**{n: quote(str(given[n]), safe=":") for n in self.path_names})
        params = {n: given[n] for n in self.query_names if given[n] is not None}
        body = None
        if self.body_names:
            body = {n: given[n] for n in self.body_names if given[n] is not None}
        return Request(self, path, params, body)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Operation[P, R]: ...

    @overload
    def __get__(self, obj: AccordClient, owner: type | None = None) -> Callable[P, R]: ...

    @overload
    def __get__(
        self, obj: AsyncAccordClient, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        send = obj._send

        def call(*args: Any, **kwargs: Any) -> Any:
            return send(self.request(*args, **kwargs))

        call.__name__ = self.name
        call.__qualname__ = f"{type(obj).__name__}.{self.name}"
        call.__doc__ = self.__doc__
        call.__signature__ = self.signature  # type: ignore[attr-defined]
        return call

    def __repr__(self) -> str:
        return f"<operation {self.name}: {self.method} {self.path}>"


def operation(
    method: str, path: str, *, query: tuple[str, ...] | None = None, after: After | None = None
) -> Callable[[Callable[Concatenate[Any, P], R]], Operation[P, R]]:
    """Declare an endpoint (see the module's docstring); ``query`` names the arguments
    sent as query parameters when the method also has a body; ``after(client, result)``
    runs on success (logging in keeps the CSRF token)."""

    def declare(declaration: Callable[Concatenate[Any, P], R]) -> Operation[P, R]:
        signature = inspect.signature(declaration)
        without_self = signature.replace(parameters=list(signature.parameters.values())[1:])
        return Operation(method, path, without_self, declaration.__doc__, query=query, after=after)

    return declare


def portal(case_operation: Operation[Concatenate[str, Q], R]) -> Operation[Q, R]:
    """The customer's variant of a case endpoint: ``/api/v1/portal/…`` instead of
    ``/api/v1/cases/{case_id}/…``, without the case argument (the link names the case)."""
    if not case_operation.path.startswith(CASE_PREFIX):
        raise TypeError(f"{case_operation.path} is not under {CASE_PREFIX}")
    parameters = list(case_operation.signature.parameters.values())
    if not parameters or parameters[0].name != "case_id":
        raise TypeError(f"{case_operation.name} does not take the case first")
    return Operation(
        case_operation.method,
        PORTAL_PREFIX + case_operation.path.removeprefix(CASE_PREFIX),
        case_operation.signature.replace(parameters=parameters[1:]),
        case_operation.__doc__,
        query=case_operation.query_names,
    )
