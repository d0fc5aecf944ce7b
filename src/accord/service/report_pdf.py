"""The signed copy's report as a PDF, with fpdf2 (see ``accord.service.report`` for the
choice). Its own module so that only writing a PDF loads fpdf (and fontTools), not every
process that serves pages."""

from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from accord.service.report import CROSS, FONT, TICK, Report


class _Document(FPDF):
    def __init__(self, report: Report) -> None:
        super().__init__(format="A4")
        self.report = report
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(auto=True, margin=16)
        self.add_font("DejaVu", "", str(FONT))
        self.set_title(f"Signed copy: {report.title}")
        self.set_creator("Accord")
        self.set_font("DejaVu", size=10)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", size=7.5)
        self.set_text_color(110, 118, 129)
        case = self.report.case or ""
        self.cell(0, 5, f"Case {case}", new_x=XPos.LEFT)
        self.cell(0, 5, f"page {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def heading(self, text: str, size: float = 13) -> None:
        self.ln(2)
        if self.will_page_break(size * 1.6):
            self.add_page()
        self.set_font("DejaVu", size=size)
        self.multi_cell(0, size * 0.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(200, 206, 212)
        self.line(self.l_margin, self.get_y() + 0.5, self.w - self.r_margin, self.get_y() + 0.5)
        self.ln(2)
        self.set_font("DejaVu", size=10)

    def para(
        self, text: str, size: float = 10, indent: float = 0, rgb: tuple[int, ...] = ()
    ) -> None:
        self.set_font("DejaVu", size=size)
        if rgb:
            self.set_text_color(*rgb)
        self.set_x(self.l_margin + indent)
        self.multi_cell(0, size * 0.48, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)


GREEN = (26, 127, 55)
RED = (207, 34, 46)
GREY = (87, 96, 106)


def render_pdf(report: Report) -> bytes:
    """The report as a PDF (A4, DejaVu Sans embedded)."""
    pdf = _Document(report)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.para("Signed copy of a case", 9, rgb=GREY)
    pdf.para(report.title, 17)
    pdf.para(f"Opened {report.opened} · times in {report.zone}", 9, rgb=GREY)
    pdf.ln(2)
    pdf.para(report.headline, 11, rgb=GREEN if report.ok else RED)
    for problem in report.file_problems:
        pdf.para(f"{CROSS} The file: {problem}", 9.5, rgb=RED)

    pdf.heading("Who takes part")
    for party in report.parties:
        pdf.para(f"• {party.name} ({party.kind}) — {party.signs}", indent=2)

    pdf.heading("What was agreed")
    if not report.versions:
        pdf.para("Nothing has been agreed yet.")
    for v in report.versions:
        pdf.para(f"Version {v.number}, agreed {v.time}", 11.5)
        if v.proposed_by:
            pdf.para(
                f"Proposed by {v.proposed_by}" + (f": “{v.note}”" if v.note else ""),
                9.5,
                rgb=GREY,
            )
        for t in v.activities:
            pdf.para(f"• {t.text}" + (f"  [{t.change}]" if t.change else ""), 9.5, indent=2)
        for t in v.data:
            pdf.para(f"• {t.text}" + (f"  [{t.change}]" if t.change else ""), 9.5, indent=2)
        for gone in v.removed:
            pdf.para(f"• Removed: {gone}", 9.5, indent=2)
        for a in v.acceptances:
            pdf.para(f"{TICK} {a.text}", 9.5, indent=2, rgb=GREEN)
        pdf.ln(1.5)

    pdf.heading("Where the case stands")
    for line in report.now:
        pdf.para(line)
    if report.activities:
        pdf.para("Activities:", 10)
        for line in report.activities:
            pdf.para(f"• {line}", 9.5, indent=2)
    for warning in report.warnings:
        pdf.para(f"{CROSS} {warning}", 9.5, rgb=RED)

    pdf.heading("Every event and its signature")
    for e in report.events:
        mark = TICK if e.ok else CROSS
        pdf.para(f"{mark} {e.time} · {e.who}", 9, rgb=GREEN if e.ok else RED)
        pdf.para(e.what, 9, indent=5)
        if not e.ok:
            pdf.para(f"Not verified: {e.reason}", 9, indent=5, rgb=RED)
            if e.detail and e.detail != e.reason:
                pdf.para(f"(line {e.line}: {e.detail})", 7.5, indent=5, rgb=GREY)

    pdf.heading("Fingerprint of this copy")
    pdf.para(
        "Two copies with the same heads and state hash hold exactly the same case.", 9, rgb=GREY
    )
    if report.state_hash:
        pdf.para(f"State hash: {report.state_hash}", 8)
    for head in report.heads:
        pdf.para(f"Head: {head}", 8)
    for who, seq, eid in report.authors:
        pdf.para(f"{who}: {seq} events, latest {eid}", 8)
    pdf.ln(2)
    pdf.para(
        "Check the signed file yourself, offline: accord verify <file> (add --html for this "
        "report).",
        8,
        rgb=GREY,
    )
    return bytes(pdf.output())
