"""Every error the core raises, in one place.

``AccordError``
├── ``CanonicalError``      bytes are not JSON, or not in Accord's canonical profile
├── ``EventFormatError``    the envelope or a body does not have the required shape
│   ├── ``UnknownEventType``   the ``type`` is not one this node understands
│   └── ``ValueFormatError``   a typed data-item value is invalid (names the field)
├── ``IntegrityError``      the hash or signature does not hold
├── ``WrongCaseError``      an event was offered to a case it does not belong to
├── ``MissingParentsError`` parents (or the author's previous event) are not held yet
├── ``ChainError``          ``seq``/``prev``/``depth`` contradict the graph
└── ``RuleError``           this node refuses to author an event that breaks a rule

Breaking a *rule* (a non-party writing, accepting a stale proposal, …) is not an
exception: such an event is signed evidence, kept and shown, never applied.
"""

from __future__ import annotations


class AccordError(Exception):
    """Base class of every error raised by ``accord.core``."""


class CanonicalError(AccordError):
    """The bytes are malformed JSON or outside the canonical profile."""


class EventFormatError(AccordError):
    """The event envelope or its body has the wrong shape."""


class UnknownEventType(EventFormatError):
    """The event's ``type`` is not registered."""


class ValueFormatError(EventFormatError):
    """A typed value is invalid; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IntegrityError(AccordError):
    """The event's id or signature does not verify."""


class WrongCaseError(AccordError):
    """The event belongs to another case."""


class MissingParentsError(AccordError):
    """Some events this one depends on are not held; ``missing`` lists their ids."""

    def __init__(self, event_id: str, missing: list[str]) -> None:
        super().__init__(f"event {event_id} refers to events not held: {', '.join(missing)}")
        self.event_id = event_id
        self.missing = missing


class ChainError(AccordError):
    """The event's ``seq``, ``prev`` or ``depth`` is inconsistent with the graph."""


class RuleError(AccordError):
    """Raised by code that refuses to author an event the rules would not apply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
