"""The signed copy's report for people (accord.service.report) and ``accord verify
--html/--pdf``: what was agreed, by whom and when, each event's check as ✓ or ✗ with the
reason, the copy's head hashes — the same in the page and in the PDF (its text read back
with pypdf, not only its size)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdf
from typer.testing import CliRunner

from accord.cli import app
from accord.core.bundle import write_bundle
from accord.service.report import PAGE_CSP, Report, render_html, render_pdf, report_of
from tests.core.builders import (
    NORTHWIND,
    NORTHWIND_PARTY,
    OUTSIDER,
    CaseBuilder,
    activity_put,
    data_put,
    hosted,
    money,
    portal,
)

ZOE = "Zoë Brontë"
TITLE = "Broadband down — engineer visit for Zoë"


def zoe_case() -> CaseBuilder:
    """Northwind and Zoë (hosted, in the portal) agree an engineer visit and a £40 credit."""
    b = CaseBuilder()
    b.open(
        NORTHWIND,
        member="Tom Baker",
        title=TITLE,
        parties=[NORTHWIND_PARTY, hosted("zoe", ZOE, NORTHWIND)],
    )
    b.message(NORTHWIND, "No sync light since Monday <b>at all</b>.", member=ZOE, **portal("zoe"))
    offer = b.propose(
        NORTHWIND,
        0,
        [
            data_put("credit", money("40.00"), "Goodwill credit"),
            activity_put(
                "engineer-visit",
                "Engineer visit",
                "northwind",
                member="Sara Lind",
                due="2026-12-03T10:00:00Z",
            ),
        ],
        member="Sara Lind",
        note="Thursday, with a credit",
    )
    b.accept(NORTHWIND, offer, member=ZOE, **portal("zoe"))
    return b


def bundle(b: CaseBuilder) -> bytes:
    return write_bundle(b.case, b.events, b.state())


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def flat(text: str) -> str:
    """Text with its line breaks and repeated spaces folded (PDF lines wrap anywhere)."""
    return re.sub(r"\s+", " ", text)


def test_a_clean_copy_reads_as_verified_in_the_page_and_the_pdf() -> None:
    b = zoe_case()
    report = report_of(bundle(b), zone=ZoneInfo("Europe/London"))
    assert report.ok and report.failed == 0
    assert report.headline.startswith("✓ Verified")
    assert report.title == TITLE
    assert [p.name for p in report.parties] == ["Northwind Broadband", ZOE]
    assert "Northwind Broadband's portal" in report.parties[1].signs
    (v1,) = report.versions
    assert v1.number == 1 and v1.proposed_by == "Northwind Broadband"
    assert v1.note == "Thursday, with a credit"
    assert [t.text for t in v1.data] == ["Goodwill credit: £40.00"]
    assert [t.text for t in v1.activities] == [
        "Engineer visit — Northwind Broadband (Sara Lind), due Thu 03 Dec 2026, 10:00"
    ]
    assert [(a.party, a.verb, a.member) for a in v1.acceptances] == [
        ("Northwind Broadband", "proposed", "Sara Lind"),
        (ZOE, "accepted", ZOE),
    ]
    assert all(e.ok for e in report.events) and len(report.events) == len(b.events)
    assert report.heads == b.state()["heads"] and report.state_hash
    assert "Engineer visit" in " ".join(report.activities)

    page = render_html(report)
    for text in (TITLE, ZOE, "Goodwill credit: £40.00", "Engineer visit", "✓ Verified"):
        assert text in page
    assert page.count(">✓</span> verified") == len(b.events)
    assert report.heads[0] in page and report.state_hash in page

    text = flat(pdf_text(render_pdf(report)))
    for words in (
        TITLE,
        ZOE,
        "Goodwill credit: £40.00",
        "Engineer visit — Northwind Broadband (Sara Lind), due Thu 03 Dec 2026, 10:00",
        f"✓ {ZOE}: accepted",
        "✓ Verified: all 4 events",
        "Every event and its signature",
        report.state_hash,
    ):
        assert words in text, words


def test_a_tampered_event_is_marked_with_the_reason() -> None:
    b = zoe_case()
    data = bundle(b)
    lines = data.split(b"\n")
    (number,) = [i for i, line in enumerate(lines) if b"Goodwill credit" in line]
    lines[number] = lines[number].replace(b'"40.00"', b'"90.00"')  # same length, still canonical
    report = report_of(b"\n".join(lines))
    assert not report.ok
    assert report.headline.startswith("✗ Not verified")
    bad = {e.line: e for e in report.events if not e.ok}
    tampered = bad[number + 1]
    assert tampered.reason is not None and tampered.reason.startswith("tampered with")
    assert "claims:" in tampered.what and "£90.00" in tampered.what  # what it says, untrusted
    # the acceptance that names the real proposal can no longer be placed
    assert any("missing from this file" in (e.reason or "") for e in bad.values())
    assert report.versions == []  # nothing it agreed is shown as agreed

    page = render_html(report)
    assert "NOT verified" in page and "tampered with" in page
    text = flat(pdf_text(render_pdf(report)))
    assert "✗ Not verified" in text and "Not verified: tampered with" in text


def test_unknown_keys_and_forked_chains_are_named() -> None:
    b = zoe_case()
    stranger = b.message(OUTSIDER, "I am not a party", member="Mallory")
    hello = b.events[1]
    fork = b.message(
        NORTHWIND,
        "a different hello",
        member=ZOE,
        seq=hello.seq,
        prev=hello.prev,
        parents=list(hello.parents),
        **portal("zoe"),
    )
    report = report_of(bundle(b))
    assert not report.ok
    by_id = {e.event: e for e in report.events}
    assert by_id[stranger.id].reason is not None
    assert "unknown key" in by_id[stranger.id].reason
    for eid in (hello.id, fork.id):
        assert "forked chain" in (by_id[eid].reason or "")
    assert any(w.startswith("Forked chain: Northwind Broadband") for w in report.warnings)
    text = flat(pdf_text(render_pdf(report)))
    assert "signed by an unknown key" in text and "forked chain" in text


def test_the_page_escapes_what_parties_wrote_and_runs_nothing() -> None:
    report = report_of(bundle(zoe_case()))
    page = render_html(report)
    assert "&lt;b&gt;at all&lt;/b&gt;" in page and "<b>at all" not in page
    assert "<script" not in page and "http" not in page.split("</style>")[0]
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in PAGE_CSP and "script" not in PAGE_CSP


def test_garbage_is_reported_not_raised() -> None:
    report: Report = report_of(b"not a bundle\n")
    assert not report.ok and report.file_problems
    assert "Not verified" in flat(pdf_text(render_pdf(report)))
    assert "The file:" in render_html(report)


def test_accord_verify_writes_the_same_report(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "case.jsonl"
    good.write_bytes(bundle(zoe_case()))
    page, pdf = tmp_path / "copy.html", tmp_path / "copy.pdf"
    args = ["verify", str(good), "--html", str(page), "--pdf", str(pdf)]
    result = runner.invoke(app, [*args, "--zone", "Europe/London"])
    assert result.exit_code == 0, result.output
    assert "✓ Verified" in page.read_text(encoding="utf-8")
    assert "Goodwill credit: £40.00" in flat(pdf_text(pdf.read_bytes()))

    data = good.read_bytes().replace(b'"40.00"', b'"90.00"')
    bad = tmp_path / "tampered.jsonl"
    bad.write_bytes(data)
    result = runner.invoke(app, ["verify", str(bad), "--html", str(page), "--pdf", str(pdf)])
    assert result.exit_code == 1  # as without --html: verification failed
    assert "tampered with" in page.read_text(encoding="utf-8")
    assert "tampered with" in flat(pdf_text(pdf.read_bytes()))

    result = runner.invoke(app, [*args, "--zone", "Mars/Olympus"])
    assert result.exit_code == 2 and "not a time zone" in result.output
    result = runner.invoke(app, ["verify", str(good), "--pdf", str(tmp_path / "no" / "x.pdf")])
    assert result.exit_code == 2 and "cannot write" in result.output
