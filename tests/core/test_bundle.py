"""The signed case bundle: what ``accord verify`` reports."""

from __future__ import annotations

import orjson
import pytest

from accord.core.bundle import FORMAT, Problem, verify_bundle, write_bundle
from accord.core.canonical import canonical
from accord.core.crypto import event_id
from accord.core.events import wire_line
from accord.core.state import State, state_hash
from tests.core.builders import (
    ENGINEER,
    FIBREFIX,
    NORTHWIND,
    OUTSIDER,
    PRIYA,
    Broadband,
    portal,
)


def scenario() -> tuple[Broadband, State, bytes]:
    sc = Broadband().full()
    sc.b.add(
        FIBREFIX,
        "activity.updated",
        {"activity": "visit-cabinet", "state": "done"},
        member=ENGINEER,
    )
    state = sc.b.state()
    return sc, state, write_bundle(sc.case, sc.b.events, state, exported_by="priya")


def lines_of(data: bytes) -> list[bytes]:
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_bundle_layout() -> None:
    sc, state, data = scenario()
    lines = lines_of(data)
    header = orjson.loads(lines[0])
    assert canonical(header) == lines[0]
    assert header == {
        "bundle": FORMAT,
        "case": sc.case,
        "events": len(sc.b.events),
        "state_hash": state_hash(state),
        "exported_by": "priya",
    }
    ordered = sorted(sc.b.events, key=lambda e: e.key)
    assert lines[1:] == [e.wire() for e in ordered]
    # the order events are handed over in does not matter
    assert write_bundle(sc.case, reversed(sc.b.events), state, exported_by="priya") == data


def test_clean_bundle_verifies() -> None:
    sc, state, data = scenario()
    report = verify_bundle(data)
    assert report.ok
    assert report.problems == [] and report.evidence == [] and report.equivocations == []
    assert report.case == sc.case
    assert report.events == len(sc.b.events)
    assert report.state_hash == state_hash(state)
    assert report.state is not None and canonical(report.state) == canonical(state)


def test_lines_in_any_order_still_verify() -> None:
    _sc, state, data = scenario()
    lines = lines_of(data)
    report = verify_bundle(join([lines[0], *reversed(lines[1:])]))
    assert report.ok and report.state_hash == state_hash(state)


def test_tampered_header_state_hash_is_reported() -> None:
    _sc, state, data = scenario()
    lines = lines_of(data)
    header = orjson.loads(lines[0])
    header["state_hash"] = "sha256:" + "0" * 64
    report = verify_bundle(join([canonical(header), *lines[1:]]))
    assert not report.ok
    assert report.state_hash == state_hash(state)  # what the events really give
    assert report.problems == [
        Problem(
            1,
            None,
            f"header claims state sha256:{'0' * 64}, the events give {state_hash(state)}",
        )
    ]


def test_wrong_event_count_in_header_is_reported() -> None:
    _sc, _state, data = scenario()
    lines = lines_of(data)
    header = orjson.loads(lines[0])
    header["events"] += 1
    report = verify_bundle(join([canonical(header), *lines[1:]]))
    assert not report.ok
    assert [p.message for p in report.problems] == [
        f"header says {header['events']} events, file has {len(lines) - 1}"
    ]


def test_missing_event_line_gives_missing_parents_for_its_children() -> None:
    sc, _state, data = scenario()
    plan, counter = sc.ev["plan"], sc.ev["counter"]
    lines = [line for line in lines_of(data) if line != plan.wire()]
    report = verify_bundle(join(lines))
    assert not report.ok
    numbered = {line: n for n, line in enumerate(lines, start=1)}
    first = report.problems[0]
    assert first.event == counter.id
    assert first.line == numbered[counter.wire()]
    assert "refers to events not held" in first.message and plan.id in first.message
    # every later event descends from the missing one, so each is reported, and so is
    # the count the header claimed
    assert {p.event for p in report.problems if p.event} == {
        e.id for e in sc.b.events if e.key > plan.key
    }
    assert report.problems[-2].message.startswith("header says")
    assert report.problems[-1].message.startswith("header claims state")
    assert report.state is not None and report.events == 2  # opened and hello


def test_bundle_with_evidence_is_not_ok_but_has_no_problems() -> None:
    sc = Broadband().agree_v1()
    wrong = sc.b.add(
        NORTHWIND,
        "activity.updated",
        {"activity": "switch-tariff", "state": "done"},
        member=PRIYA,
        **portal(),
    )
    state = sc.b.state()
    report = verify_bundle(write_bundle(sc.case, sc.b.events, state))
    assert report.problems == []
    assert not report.ok
    assert [e["event"] for e in report.evidence] == [wrong.id]
    assert "owner party" in report.evidence[0]["reason"]
    assert report.state_hash == state_hash(state)


def test_bundle_with_an_equivocation_is_not_ok_but_has_no_problems() -> None:
    sc = Broadband()
    b = sc.b
    hello = sc.ev["hello"]
    fork = b.message(
        NORTHWIND,
        "a different hello",
        member="Tom Baker",
        seq=hello.seq,
        prev=hello.prev,
        parents=list(hello.parents),
    )
    report = verify_bundle(write_bundle(sc.case, b.events, b.state()))
    assert report.problems == []
    assert not report.ok
    assert report.equivocations == [
        {"author": NORTHWIND.public, "seq": 2, "events": sorted([hello.id, fork.id])}
    ]


def test_outsider_event_is_evidence() -> None:
    sc = Broadband()
    sc.b.message(OUTSIDER, "hi", member="Mallory")
    report = verify_bundle(write_bundle(sc.case, sc.b.events, sc.b.state()))
    assert report.problems == [] and not report.ok
    assert report.evidence[0]["reason"] == "author is not a party of this case"


def test_empty_file() -> None:
    report = verify_bundle(b"")
    assert not report.ok
    assert report.problems == [Problem(0, None, "the file is empty")]
    assert report.state is None and report.case is None and report.events == 0


@pytest.mark.parametrize(
    ("first_line", "message"),
    [
        (b"hello, this is not a bundle", "header: malformed JSON"),
        (b"\x00\xff\xfe", "header: malformed JSON"),
        (b'{"bundle": "accord-case-v1"}', "header: JSON is not byte-canonical"),
        (b'{"bundle":"accord-case-v0","case":"x"}', "header: first line is not an accord-case-v1"),
        (b'["accord-case-v1"]', "header: first line is not an accord-case-v1"),
    ],
)
def test_garbage_first_line(first_line: bytes, message: str) -> None:
    _sc, _state, data = scenario()
    report = verify_bundle(join([first_line, *lines_of(data)[1:]]))
    assert not report.ok
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.line == 1 and problem.event is None
    assert problem.message.startswith(message)
    assert report.state is None


def test_header_without_case() -> None:
    _sc, _state, data = scenario()
    lines = lines_of(data)
    header = orjson.loads(lines[0])
    del header["case"]
    report = verify_bundle(join([canonical(header), *lines[1:]]))
    assert not report.ok
    assert Problem(1, None, "header names no case") in report.problems


def test_event_lines_of_another_case_are_reported() -> None:
    sc, _state, data = scenario()
    other = Broadband(nonce="nw-0002")
    lines = [*lines_of(data), other.ev["hello"].wire()]
    header = orjson.loads(lines[0])
    header["events"] += 1
    report = verify_bundle(join([canonical(header), *lines[1:]]))
    assert [(p.line, p.event) for p in report.problems] == [(len(lines), other.ev["hello"].id)]
    assert "belongs to case" in report.problems[0].message
    assert report.events == len(sc.b.events)


def test_duplicate_event_line() -> None:
    _sc, _state, data = scenario()
    lines = lines_of(data)
    report = verify_bundle(join([*lines, lines[3]]))
    duplicate = [p for p in report.problems if p.message == "event appears twice"]
    assert len(duplicate) == 1 and duplicate[0].line == len(lines) + 1
    assert not report.ok


def test_forged_signature_line_names_the_event() -> None:
    sc, _state, data = scenario()
    lines = lines_of(data)
    hello = sc.ev["hello"]
    number = lines.index(hello.wire())
    forged = hello.wire().replace(hello.sig.encode(), FIBREFIX.sign_event_id(hello.id).encode())
    lines[number] = forged
    report = verify_bundle(join(lines))
    assert not report.ok
    first = report.problems[0]
    assert (first.line, first.event) == (number + 1, hello.id)
    assert "signature does not verify" in first.message


def test_nothing_verifiable() -> None:
    sc, _state, data = scenario()
    lines = lines_of(data)
    report = verify_bundle(join([lines[0], b"garbage", b"{}"]))
    assert not report.ok and report.state is None
    assert Problem(1, None, "no event of the case could be verified") in report.problems
    assert [p.line for p in report.problems if p.line > 1] == [2, 3]
    assert report.case == sc.case


def test_signature_last_character_change_is_noticed() -> None:
    sc, _state, data = scenario()
    hello = sc.ev["hello"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(hello.sig[-1])
    other = alphabet[last ^ 1]  # same top 2 bits: decodes to the same 64 bytes
    changed = data.replace(hello.sig.encode(), (hello.sig[:-1] + other).encode())
    assert changed != data
    assert not verify_bundle(changed).ok


def test_malformed_event_line_is_a_problem_not_a_crash() -> None:
    sc, _state, data = scenario()
    obj = orjson.loads(sc.ev["opened"].raw)
    obj["body"]["topics"] = 5
    raw = canonical(obj)
    line = wire_line(raw, NORTHWIND.sign_event_id(event_id(raw)))
    report = verify_bundle(join([*lines_of(data), line]))
    assert report.problems and not report.ok
