"""A party's signed copy of a case, three ways: a page to read, a PDF to keep, and the
signed file for machines (``accord verify``).

The page and the PDF are the verification report of ``accord.service.report``, made from
exactly the bundle the signed file holds: the bundle is written, checked as any verifier
would check it, and presented. The callers (the portal's routes and the workspace's)
check who may have the copy first — the portal link grants only its own case; a member
needs ``cases:read`` — exactly as for the signed file.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse, Response

from accord.core.bundle import write_bundle
from accord.service import settings
from accord.service.errors import NotFound
from accord.service.report import PAGE_CSP, render_html, render_pdf, report_of
from accord.web.session import secure_headers

FORMS = ("html", "pdf", "jsonl")


def signed_copy(services: Any, case_id: str, form: str, *, referrer: str) -> Response:
    """The signed copy of ``case_id`` as a page (``html``), a PDF (``pdf``) or the signed
    file (``jsonl``); ``NotFound`` for any other form or an unknown case."""
    if form not in FORMS:
        raise NotFound(f"the signed copy comes as {', '.join(FORMS)}, not {form[:20]!r}")
    n = services.negotiation
    state = n.state(case_id)
    data = write_bundle(case_id, n.cases.events(case_id), state, exported_by=n.key.public)
    name = f"accord-case-{case_id[7:19]}"
    if form == "jsonl":
        response = Response(data, media_type="application/jsonl")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}.jsonl"'
        return secure_headers(response, referrer=referrer)
    report = report_of(data, zone=settings.zone(services.node.db))
    if form == "html":
        page = secure_headers(HTMLResponse(render_html(report)), referrer=referrer)
        page.headers["Content-Security-Policy"] = PAGE_CSP  # its own stylesheet, nothing else
        return page
    pdf = Response(render_pdf(report), media_type="application/pdf")
    pdf.headers["Content-Disposition"] = f'attachment; filename="{name}.pdf"'
    return secure_headers(pdf, referrer=referrer)
