"""The signed copy offered three ways in the portal and the workspace (issue 19, item 7):
"read it" (the verification report as a page), "PDF" and the signed file for machines —
each behind the same authorisation as the signed file: the portal link reaches only its
own case, a member needs ``cases:read``."""

from __future__ import annotations

import io
import re

import pypdf
import pytest
from fastapi.testclient import TestClient

from accord.auth import scopes
from accord.service.report import PAGE_CSP
from tests.web.conftest import Desk
from tests.web.test_negotiation_pages import OFFER, pending, portal_of
from tests.web.test_pages import login


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    pages = pypdf.PdfReader(io.BytesIO(data)).pages
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in pages))


def agreed_case(desk: Desk) -> tuple[str, TestClient, TestClient, str]:
    """Zoë's case with a credit and an engineer visit she accepted in the portal."""
    case_id = desk.mail("Broadband down", "No sync light since Monday.", name="Zoë Brontë")
    agent = TestClient(desk.app)
    csrf = login(agent)
    offer = {**OFFER, "csrf": csrf, "act_owner": desk.services.party_id}
    assert agent.post(f"/cases/{case_id}/propose", data=offer).status_code == 200
    (proposal,) = pending(desk, case_id)
    link = portal_of(desk, agent, csrf, case_id)
    customer = TestClient(desk.app)
    accepted = customer.post(f"{link}/proposals/{proposal}/accept", follow_redirects=False)
    assert accepted.status_code == 303
    assert desk.services.negotiation.state(case_id)["terms"]["version"] == 1
    return case_id, agent, customer, link


def test_the_customer_reads_their_signed_copy_as_a_page_and_a_pdf(desk: Desk) -> None:
    case_id, _agent, customer, link = agreed_case(desk)
    portal = customer.get(link).text
    for href in (f"{link}/copy.html", f"{link}/copy.pdf", f"{link}/copy"):
        assert f'href="{href}"' in portal
    assert "read it" in portal and "signed file for machines" in portal

    page = customer.get(f"{link}/copy.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert page.headers["referrer-policy"] == "no-referrer"
    text = page.text
    for words in ("Broadband down", "Zoë Brontë", "Credit: £25.00", "Engineer visit", "✓ Verified"):
        assert words in text, words
    assert "NOT verified" not in text and "<script" not in text

    pdf = customer.get(f"{link}/copy.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].endswith(f'{case_id[7:19]}.pdf"')
    words = pdf_text(pdf.content)
    for expected in ("Broadband down", "Zoë Brontë", "Credit: £25.00", "Engineer visit"):
        assert expected in words, expected
    assert "✓ Verified" in words and "Zoë Brontë: accepted" in words

    signed = customer.get(f"{link}/copy")
    assert signed.headers["content-type"].startswith("application/jsonl")
    assert signed.content.count(b"\n") == len(desk.services.negotiation.cases.events(case_id)) + 1


def test_a_portal_link_reaches_only_its_own_case(desk: Desk) -> None:
    _case_id, _agent, customer, link = agreed_case(desk)
    other = desk.mail("Router for the shop", "A second case.", sender="sam@example.org")
    assert desk.services.negotiation.state(other)["title"] != "Broadband down"
    page = customer.get(f"{link}/copy.html").text
    assert "Router for the shop" not in page
    gone = customer.get("/portal/not-a-valid-token/copy.pdf")
    assert gone.status_code == 401 and not gone.content.startswith(b"%PDF")
    assert customer.get(f"{link}/copy.exe").status_code == 404


def test_members_get_the_copy_from_the_workspace_with_cases_read(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id, agent, _customer, _link = agreed_case(desk)
    workspace = agent.get(f"/cases/{case_id}").text
    for href in (
        f"/cases/{case_id}/copy.html",
        f"/cases/{case_id}/copy.pdf",
        f"/api/v1/cases/{case_id}/bundle",
    ):
        assert f'href="{href}"' in workspace
    page = agent.get(f"/cases/{case_id}/copy.html")
    assert page.status_code == 200 and "✓ Verified" in page.text
    assert "Zoë Brontë" in pdf_text(agent.get(f"/cases/{case_id}/copy.pdf").content)
    assert agent.get(f"/cases/{case_id}/copy.txt").status_code == 404
    assert agent.get(f"/cases/sha256:{'0' * 64}/copy.html").status_code == 404

    stranger = TestClient(desk.app)
    away = stranger.get(f"/cases/{case_id}/copy.pdf", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"].startswith("/login")

    monkeypatch.setitem(scopes.ROLE_SCOPES, "agent", frozenset({scopes.CASES_WRITE}))
    refused = agent.get(f"/cases/{case_id}/copy.pdf")
    assert refused.status_code == 403 and "cases:read" in refused.text
