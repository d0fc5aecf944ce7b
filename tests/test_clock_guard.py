"""The guard that keeps the suite from rotting with the calendar.

A test that gives an application the real clock and then posts a literal date passes until
that date goes by (CI went red on 2026-12-01 that way). So every application a test
builds takes an injected clock (a job queue shared with worker processes may read the
real one: its tests work relative to it). The year-ahead run in CI
(``ACCORD_TEST_CLOCK_OFFSET_DAYS``) catches whatever this static check cannot see.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FACTORIES = {"create_app", "build"}  # accord.api.app.create_app, accord.wiring.Services.build


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _reads_real_clock(node: ast.expr) -> bool:
    """``datetime.now``, ``lambda: datetime.now(UTC)``, ``time.time`` and the like."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in {"now", "utcnow", "today", "time"}:
            base = sub.value
            if isinstance(base, ast.Name) and base.id in {"datetime", "date", "time"}:
                return True
    return False


def offences(source: str, path: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
        where = f"{path}:{node.lineno}"
        if name == "create_app" and "now" not in keywords:
            found.append(f"{where}: create_app() without now= runs on the real clock")
        if name == "build" and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if isinstance(target, ast.Name) and target.id == "Services" and "now" not in keywords:
                found.append(f"{where}: Services.build() without now= runs on the real clock")
        clock = keywords.get("now")
        if name in FACTORIES and clock is not None and _reads_real_clock(clock):
            found.append(f"{where}: now= reads the real clock; use tests.clocks")
    return found


def test_every_application_in_the_tests_runs_on_an_injected_clock() -> None:
    found: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        found += offences(path.read_text(), str(path.relative_to(TESTS.parent)))
    assert not found, "\n".join(found)


def test_the_guard_sees_the_real_clock() -> None:
    """The check itself: each way of reaching the real clock is caught."""
    bad = """
app = create_app(node)
app = create_app(node, now=lambda: datetime.now(UTC))
app = create_app(node, now=datetime.now)
services = Services.build(node)
services = Services.build(node, now=lambda: datetime.now(UTC))
"""
    assert len(offences(bad, "x.py")) == 5
    good = "app = create_app(node, now=clock, passwords=cheap_passwords())"
    assert offences(good, "x.py") == []
