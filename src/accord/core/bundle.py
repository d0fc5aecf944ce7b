"""The signed case bundle: what ``accord export`` writes and ``accord verify`` checks.

A bundle is JSON Lines. The first line is a header,
``{"bundle":"accord-case-v1","case":…,"events":N,"state_hash":…,…}``; every further
line is one event in wire form, ``{"event":…,"sig":"…"}``, in (depth, id) order.
Events carry their own signatures, so the header needs none: a verifier recomputes
everything from the events and reports where the header's claims differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from accord.core.canonical import canonical, parse_canonical
from accord.core.errors import AccordError
from accord.core.events import Event, parse_wire
from accord.core.fold import CaseFold, MemoryGraph
from accord.core.state import Equivocation, Evidence, State, state_hash

FORMAT = "accord-case-v1"


def write_bundle(case_id: str, events: Iterable[Event], state: State, **extra: Any) -> bytes:
    """Serialise a case's events (any order) into bundle bytes."""
    ordered = sorted(events, key=lambda e: e.key)
    header = {
        "bundle": FORMAT,
        "case": case_id,
        "events": len(ordered),
        "state_hash": state_hash(state),
        **extra,
    }
    lines = [canonical(header)] + [e.wire() for e in ordered]
    return b"\n".join(lines) + b"\n"


@dataclass
class Problem:
    line: int
    event: str | None
    message: str
    kind: str = ""  # the core error's class name (IntegrityError, ChainError, …), for reports


@dataclass
class Checked:
    """One event that passed its hash and signature check and was folded: ``party`` is
    the party it acted for, ``verdict`` why it is only evidence (None: it took effect)."""

    line: int
    event: Event
    party: str | None
    verdict: str | None


@dataclass
class BundleReport:
    """Everything ``accord verify`` found; ``ok`` only if every hash, signature and rule held."""

    case: str | None = None
    events: int = 0
    state: State | None = None
    state_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    checked: list[Checked] = field(default_factory=list)  # in fold order

    @property
    def evidence(self) -> list[Evidence]:
        return list(self.state["evidence"]) if self.state else []

    @property
    def equivocations(self) -> list[Equivocation]:
        return list(self.state["equivocations"]) if self.state else []

    @property
    def ok(self) -> bool:
        return (
            self.state is not None
            and not self.problems
            and not self.evidence
            and not self.equivocations
        )


def verify_bundle(data: bytes) -> BundleReport:
    """Check every line, hash, signature, chain and rule of a bundle, offline."""
    report = BundleReport()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        report.problems.append(Problem(0, None, "the file is empty"))
        return report
    try:
        header = parse_canonical(lines[0])
        if not isinstance(header, dict) or header.get("bundle") != FORMAT:
            raise AccordError(f"first line is not an {FORMAT} header")
    except AccordError as exc:
        report.problems.append(Problem(1, None, f"header: {exc}"))
        return report
    case_id = header.get("case")
    report.case = case_id if isinstance(case_id, str) else None
    events: list[tuple[int, Event]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        try:
            event = parse_wire(line, case=report.case)
        except AccordError as exc:
            report.problems.append(Problem(number, _guess_id(line), str(exc), type(exc).__name__))
            continue
        if event.id in seen:
            report.problems.append(Problem(number, event.id, "event appears twice", "duplicate"))
            continue
        seen.add(event.id)
        events.append((number, event))
    if report.case is None:
        report.problems.append(Problem(1, None, "header names no case"))
        return report
    folder = CaseFold(report.case, MemoryGraph())
    for number, event in sorted(events, key=lambda item: item[1].key):
        try:
            meta = folder.add(event)
        except AccordError as exc:
            report.problems.append(Problem(number, event.id, str(exc), type(exc).__name__))
            continue
        report.checked.append(Checked(number, event, meta.party, meta.verdict))
    report.events = folder.state["events"]
    if report.events:
        report.state = folder.state
        report.state_hash = state_hash(folder.state)
    else:
        report.problems.append(Problem(1, None, "no event of the case could be verified"))
    if header.get("events") != len(lines) - 1:
        report.problems.append(
            Problem(
                1, None, f"header says {header.get('events')} events, file has {len(lines) - 1}"
            )
        )
    if report.state_hash and header.get("state_hash") != report.state_hash:
        report.problems.append(
            Problem(
                1,
                None,
                f"header claims state {header.get('state_hash')}, "
                f"the events give {report.state_hash}",
            )
        )
    return report


def _guess_id(line: bytes) -> str | None:
    """Best-effort id of a line that failed, for the report."""
    try:
        obj = orjson.loads(line)
        from accord.core.crypto import event_id

        return event_id(orjson.dumps(obj["event"], option=orjson.OPT_SORT_KEYS))
    except Exception:
        return None
