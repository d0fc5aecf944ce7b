"""The verification report of a signed case copy: what a customer reads to see what was
agreed, by whom and when, and that every signature holds — as a page and as a PDF.

The checking is ``accord.core.bundle.verify_bundle`` (every hash, signature, chain and
rule, offline); this module only presents what it found, in plain words: the case, its
parties, each agreed version with who accepted it and when, where the case stands now,
and every event of the file with a tick (✓) or a cross (✗) and the reason (tampered
with, signed by an unknown key, a forked chain, …), then the copy's head hashes. The
same ``Report`` feeds the portal's and the workspace's "read it · PDF" links and
``accord verify --html/--pdf``, so the three always say the same.

HTML: one standalone page (``report_assets/signed_copy.html``, Jinja2 with autoescaping
on: everything in a case was written by a party) with its stylesheet inline, no script
and nothing loaded from elsewhere, so it works saved to disk, offline, and prints
cleanly. ``PAGE_CSP`` is the policy a server sends with it: only that one stylesheet.

PDF: ``fpdf2`` (LGPL-3.0). Chosen because it is pure Python (no Cairo/Pango or other
system libraries, unlike WeasyPrint; no compiler), actively maintained by the py-pdf
organisation with regular releases, typed, and it embeds and subsets TrueType fonts, so
any Unicode text of a case ("Zoë", "£40.00", "✓") is drawn exactly. ReportLab's open
edition would also do, with a heavier API and its own font handling for the same result.
The font is DejaVu Sans shipped inside the package (``report_assets/``, subset to Latin,
Greek, Cyrillic, punctuation, currency signs and check marks, 140 kB; its licence beside
it), so a PDF looks the same on every machine and needs no system font.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from accord.core.bundle import BundleReport, Checked, Problem, verify_bundle
from accord.core.crypto import fingerprint
from accord.service.wording import EVENT_WORDS, activity_words, change_words, party_name, when

ASSETS = Path(__file__).parent / "report_assets"
FONT = ASSETS / "DejaVuSans.ttf"
TICK = "✓"
CROSS = "✗"

_CSS = (ASSETS / "signed_copy.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")
PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy for the report page: its own inline stylesheet, nothing else."""

_PAGES = Environment(
    loader=FileSystemLoader(ASSETS),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

CURRENCY_SIGNS = {"GBP": "£", "EUR": "€", "USD": "$"}
PROGRESS_WORDS = {
    "agreed": "to do",
    "in_progress": "in progress",
    "done": "done",
    "cancelled": "cancelled",
}
VIA_WORDS = {
    "portal": "in the portal",
    "email": "by email",
    "phone": "by phone",
    "sms": "by text message",
    "webchat": "in the web chat",
    "whatsapp": "on WhatsApp",
    "messenger": "on Messenger",
    "instagram": "on Instagram",
    "telegram": "on Telegram",
    "x": "on X",
    "import": "imported",
}
PROBLEM_WORDS = {
    "IntegrityError": "tampered with or damaged: its signature does not match what it says",
    "CanonicalError": "not a well-formed event (its bytes are not in the signed form)",
    "EventFormatError": "not a well-formed event",
    "UnknownEventType": "an event of a kind this version of Accord does not know",
    "ValueFormatError": "not a well-formed event (a value in it is invalid)",
    "WrongCaseError": "belongs to another case",
    "MissingParentsError": "refers to earlier events that are missing from this file",
    "ChainError": "breaks its author's chain (numbering or order does not follow)",
    "duplicate": "appears twice in the file",
}


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    name: str
    kind: str  # "organisation" | "person"
    signs: str  # how its events are signed, in words


@dataclass(frozen=True)
class Term:
    """One agreed activity or data item, in words; ``change`` says how it differs from the
    version before ("new", "changed" or "")."""

    text: str
    change: str = ""


@dataclass(frozen=True)
class Acceptance:
    party: str
    member: str
    time: str
    verb: str  # "proposed" or "accepted"

    @property
    def text(self) -> str:
        """ "Priya Shah: accepted, Mon 23 Nov…" or "Northwind: proposed by Sara Lind, …"."""
        by = f" by {self.member}" if self.member and self.member != self.party else ""
        return f"{self.party}: {self.verb}{by}, {self.time}"


@dataclass(frozen=True)
class Version:
    number: int
    time: str
    proposed_by: str
    note: str | None
    activities: list[Term]
    data: list[Term]
    removed: list[str]
    acceptances: list[Acceptance]


@dataclass(frozen=True)
class EventCheck:
    """One line of the file: ✓ when its hash, signature, chain and rules hold."""

    line: int
    event: str | None
    time: str
    who: str
    what: str
    ok: bool
    reason: str | None = None  # in plain words, when not ok
    detail: str | None = None  # the checker's own words, for an expert


@dataclass
class Report:
    ok: bool
    headline: str
    case: str | None
    title: str
    opened: str
    zone: str
    parties: list[Party] = field(default_factory=list)
    versions: list[Version] = field(default_factory=list)
    now: list[str] = field(default_factory=list)  # where the case stands, line by line
    activities: list[str] = field(default_factory=list)  # the current activities and progress
    warnings: list[str] = field(default_factory=list)  # superseded agreements, forks
    events: list[EventCheck] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    authors: list[tuple[str, int, str]] = field(default_factory=list)  # who, seq, latest id
    state_hash: str | None = None
    verified: int = 0

    @property
    def failed(self) -> int:
        return sum(1 for e in self.events if not e.ok) + len(self.file_problems)


def report_of(data: bytes, *, zone: ZoneInfo | None = None) -> Report:
    """Check the bundle ``data`` (``accord.core.bundle.verify_bundle``) and present it."""
    return present(verify_bundle(data), data, zone=zone)


def present(checked: BundleReport, data: bytes, *, zone: ZoneInfo | None = None) -> Report:
    """The report of a bundle already checked; ``data`` gives the failing lines' claims."""
    tz = zone or ZoneInfo("UTC")
    state: Mapping[str, Any] = checked.state or {}
    parties: dict[str, Any] = state.get("parties", {})
    by_id = {c.event.id: c for c in checked.checked}
    opened = state.get("opened") or {}
    report = Report(
        ok=checked.ok,
        headline="",
        case=checked.case,
        title=state.get("title") or "(no case could be read from this file)",
        opened=when(opened.get("time"), tz),
        zone=str(tz.key) if hasattr(tz, "key") else str(tz),
        state_hash=checked.state_hash,
    )
    for p in parties.values():
        report.parties.append(Party(p["name"], p["kind"], _signs(p, parties)))
    if state:
        report.versions = _versions(state, by_id, tz)
        report.now, report.activities = _now(state, tz)
        report.warnings = _warnings(state, by_id)
        report.heads = list(state["heads"])
        report.authors = [
            (_node_name(node, parties), head["seq"], head["id"])
            for node, head in sorted(state["authors"].items())
        ]
    report.events = _events(checked, data, state, tz)
    report.verified = sum(1 for e in report.events if e.ok)
    report.file_problems = [
        f"{p.message}" for p in checked.problems if p.event is None and p.line <= 1
    ]
    report.headline = _headline(report, checked)
    return report


def _headline(report: Report, checked: BundleReport) -> str:
    if report.ok:
        return (
            f"{TICK} Verified: all {report.verified} events of this case are signed by its "
            "parties, unchanged, in order, and keep the case's rules."
        )
    if checked.state is None:
        return f"{CROSS} Not verified: nothing in this file could be checked as a case."
    return (
        f"{CROSS} Not verified: {report.failed} problem"
        + ("s" if report.failed != 1 else "")
        + f" found ({report.verified} of {len(report.events)} events check out). "
        "Do not rely on the entries marked "
        + CROSS
        + " below; ask the other party for a fresh copy."
    )


def _signs(p: dict[str, Any], parties: dict[str, Any]) -> str:
    if p.get("hosted_by"):
        host = _node_name(p["hosted_by"], parties, own_only=True)
        return f"acts through {host}'s portal; {host} signs for them"
    if p.get("node"):
        return f"signs with its own key {fingerprint(p['node'])}"
    return "no key"


def _node_name(node: str, parties: dict[str, Any], *, own_only: bool = False) -> str:
    for p in parties.values():
        if p.get("node") == node:
            return str(p["name"])
    return "an unknown key " + fingerprint(node)[:9] if not own_only else fingerprint(node)


def _versions(state: Mapping[str, Any], by_id: dict[str, Checked], tz: ZoneInfo) -> list[Version]:
    parties = state["parties"]
    out = []
    previous: dict[str, Any] = {"data": {}, "activities": {}}
    for agreement in state["agreements"]:
        terms = agreement["terms"]
        proposal = state["proposals"].get(agreement["proposal"], {})
        acts = [
            Term(
                activity_words(a, parties, tz),
                _change(previous["activities"].get(aid), a),
            )
            for aid, a in terms["activities"].items()
        ]
        data = [
            Term(
                f"{item.get('label') or key}: {money_or_value(item['value'], tz)}",
                _change(previous["data"].get(key), item),
            )
            for key, item in terms["data"].items()
        ]
        removed = [
            a["title"]
            for aid, a in previous["activities"].items()
            if aid not in terms["activities"]
        ] + [
            str(item.get("label") or key)
            for key, item in previous["data"].items()
            if key not in terms["data"]
        ]
        acceptances = []
        for party, eid in sorted(
            agreement["acceptances"].items(), key=lambda kv: _time_of(kv[1], by_id)
        ):
            c = by_id.get(eid)
            acceptances.append(
                Acceptance(
                    party=party_name(parties, party),
                    member=c.event.author.member if c else "",
                    time=when(c.event.time, tz) if c else "",
                    verb="proposed"
                    if c is not None and c.event.type == "proposal.made"
                    else "accepted",
                )
            )
        out.append(
            Version(
                number=agreement["version"],
                time=when(agreement["time"], tz),
                proposed_by=party_name(parties, proposal.get("by")),
                note=proposal.get("note"),
                activities=acts,
                data=data,
                removed=removed,
                acceptances=acceptances,
            )
        )
        previous = terms
    return out


def _time_of(eid: str, by_id: dict[str, Checked]) -> tuple[int, str]:
    c = by_id.get(eid)
    return c.event.key if c else (0, eid)


def _change(before: Any, after: Any) -> str:
    if before is None:
        return "new"
    return "" if before == after else "changed"


def money_or_value(value: dict[str, Any], zone: ZoneInfo | None = None) -> str:
    """A typed value for a customer: money with its sign ("£40.00 a month")."""
    kind = value.get("type")
    if kind == "money":
        amount, currency = str(value["amount"]), str(value["currency"])
        sign = CURRENCY_SIGNS.get(currency)
        text = f"{sign}{amount}" if sign else f"{amount} {currency}"
        per = value.get("per")
        if per and per != "once":
            text += f" a {per}"
        return text
    if kind == "file":
        return f"the file {value['name']} ({value['size']} bytes)"
    if kind == "number" and value.get("unit"):
        return f"{value['value']} {value['unit']}"
    if kind == "boolean":
        return "yes" if value.get("value") else "no"
    if kind == "datetime":
        return when(str(value.get("value")), zone or ZoneInfo("UTC"))
    return str(value.get("value"))


def _now(state: Mapping[str, Any], tz: ZoneInfo) -> tuple[list[str], list[str]]:
    parties = state["parties"]
    lines = []
    version = state["terms"]["version"]
    if state["resolved"]:
        lines.append("Resolved: every party said it is satisfied.")
    else:
        times = state["reopened"]
        lines.append(
            "Open" + (f" (reopened {times} time{'s' if times != 1 else ''})" if times else "")
        )
    lines.append(f"Agreed terms: version {version}" if version else "Nothing has been agreed yet.")
    if state.get("status"):
        lines.append(f"Status: {state['status']['label']}")
    for party, owner in sorted(state["owners"].items()):
        lines.append(f"{party_name(parties, party)}'s person in charge: {owner['name']}")
    for party, entry in sorted(state["satisfied"].items()):
        text = f"{party_name(parties, party)} is satisfied (since {when(entry['time'], tz)})"
        if entry.get("reason"):
            text += f", closed with work still open: {entry['reason']}"
        lines.append(text)
    for topic in state["topics"].values():
        lines.append(f"Topic “{topic['title']}”: {topic['state']}")
    pending = [p for p in state["proposals"].values() if p["state"] == "pending"]
    if pending:
        lines.append(
            f"{len(pending)} proposal"
            + ("s" if len(pending) != 1 else "")
            + " waiting for an answer"
        )
    activities = []
    for aid, a in state["terms"]["activities"].items():
        progress = state["progress"].get(aid, {}).get("state", "agreed")
        activities.append(
            f"{activity_words(a, parties, tz)} — {PROGRESS_WORDS.get(progress, progress)}"
        )
    return lines, activities


def _warnings(state: Mapping[str, Any], by_id: dict[str, Checked]) -> list[str]:
    parties = state["parties"]
    out = []
    for entry in state["superseded"]:
        out.append(
            f"An agreement on version {entry['version']} that a copy may have shown did not "
            f"stand: {entry['reason']}."
        )
    for fork in state["equivocations"]:
        out.append(
            f"Forked chain: {_node_name(fork['author'], parties)} signed "
            f"{len(fork['events'])} different events as its event number {fork['seq']}. "
            "Those events are kept as evidence and have no effect."
        )
    return out


def _events(
    checked: BundleReport, data: bytes, state: Mapping[str, Any], tz: ZoneInfo
) -> list[EventCheck]:
    rows: list[EventCheck] = []
    parties: dict[str, Any] = state.get("parties", {})
    forks = {e for q in checked.equivocations for e in q["events"]}
    for c in checked.checked:
        e = c.event
        party = c.party or e.author.for_party or _owner_party(e.author.node, parties)
        who = e.author.member
        name = party_name(parties, party) if party else ""
        if name and name != who:
            who += f" ({name})"
        if e.author.via in VIA_WORDS:
            who += f", {VIA_WORDS[e.author.via]}"
        rows.append(
            EventCheck(
                line=c.line,
                event=e.id,
                time=when(e.time, tz),
                who=who,
                what=_what(e.type, e.body, state, tz),
                ok=c.verdict is None and e.id not in forks,
                reason=_rule_words(c.verdict, e.id in forks),
                detail=c.verdict,
            )
        )
    lines = data.split(b"\n")
    for p in checked.problems:
        if p.event is None and p.line <= 1:
            continue  # about the file, not an event
        claim = _claim(lines[p.line - 1] if 0 < p.line <= len(lines) else b"", state, tz)
        rows.append(
            EventCheck(
                line=p.line,
                event=p.event,
                time=claim[0],
                who=claim[1],
                what=claim[2],
                ok=False,
                reason=_problem_words(p),
                detail=p.message,
            )
        )
    rows.sort(key=lambda r: r.line)
    return rows


def _owner_party(node: str, parties: dict[str, Any]) -> str | None:
    for pid, p in parties.items():
        if p.get("node") == node:
            return str(pid)
    return None


def _rule_words(verdict: str | None, forked: bool) -> str | None:
    if forked and verdict is None:
        return (
            "forked chain: its author also signed a different event at the same place in "
            "its chain (this one was met first and took effect)"
        )
    if verdict is None:
        return None
    if forked or verdict.startswith(("equivocation", "continues an equivocation")):
        return (
            "forked chain: its author signed another event at the same place in its "
            "chain; kept as evidence, no effect"
        )
    if verdict == "author is not a party of this case":
        return "signed by an unknown key: not a party of this case; no effect"
    return f"breaks a rule of the case ({verdict}); kept as evidence, no effect"


def _problem_words(p: Problem) -> str:
    return PROBLEM_WORDS.get(p.kind, p.message)


def _claim(line: bytes, state: Mapping[str, Any], tz: ZoneInfo) -> tuple[str, str, str]:
    """What a line that failed its check claims to be (time, who, what) — untrusted,
    shown so the reader can tell which entry it is."""
    try:
        event = orjson.loads(line)["event"]
        body = event.get("body") if isinstance(event.get("body"), dict) else {}
        what = _what(str(event.get("type")), body, state, tz)
        who = str(event.get("author", {}).get("member", ""))
        return when(str(event.get("time")), tz), who, f"claims: {what}"
    except Exception:
        return "", "", "a line that is not an event"


def _what(
    kind: str,
    body: dict[str, Any],
    state: Mapping[str, Any],
    tz: ZoneInfo,
) -> str:
    """One event in plain words, naming parties, activities and topics as ``state`` does."""
    parties: dict[str, Any] = state.get("parties", {})
    titles = {aid: str(p["title"]) for aid, p in state.get("progress", {}).items() if "title" in p}
    titles.update(
        (aid, str(a["title"])) for aid, a in state.get("terms", {}).get("activities", {}).items()
    )
    topics = {t: str(v["title"]) for t, v in state.get("topics", {}).items()}
    words = EVENT_WORDS.get(kind, kind)
    try:
        if kind == "case.opened":
            words = f"opened the case “{body['title']}”"
        elif kind == "message.posted":
            text = " ".join(str(body["text"]).split())
            words = f"wrote: “{text[:200]}{'…' if len(text) > 200 else ''}”"
        elif kind in ("topic.opened",) and body.get("title"):
            words = f"opened the topic “{body['title']}”"
        elif kind == "topic.closed":
            words = f"closed the topic “{topics.get(body['topic'], body['topic'])}”"
        elif kind == "data.set":
            words = (
                f"shared {body.get('label') or body['key']}: {money_or_value(body['value'], tz)}"
            )
        elif kind == "proposal.made":
            changes = [
                change_words(c, parties, tz, value=lambda v: money_or_value(v, tz), titles=titles)
                for c in body["changes"]
            ]
            verb = "countered with" if body.get("counter_of") else "proposed"
            words = f"{verb}: " + "; ".join(changes)
        elif kind == "activity.committed":
            words = "promised: " + activity_words(body, parties, tz)
        elif kind == "activity.updated":
            state = PROGRESS_WORDS.get(body["state"], body["state"])
            words = f"marked “{titles.get(body['activity'], body['activity'])}” as {state}"
        elif kind == "party.satisfied":
            words = f"said they are satisfied with version {body['version']}"
            if body.get("reason"):
                words += f", with work still open: {body['reason']}"
        elif kind == "case.reopened":
            words = f"reopened the case: {body['reason']}"
        elif kind == "status.set":
            words = f"set the status to {body['label']}"
        elif kind == "owner.named":
            words = f"named {body['name']} as the person in charge"
        elif kind in ("proposal.accepted", "proposal.rejected", "proposal.withdrawn"):
            proposal = state.get("proposals", {}).get(body["proposal"])
            if proposal is not None:
                whose = party_name(parties, proposal["by"])
                words = words.replace(
                    "a proposal", f"{whose}'s proposal of {when(proposal['time'], tz)}"
                )
            if body.get("reason"):
                words += f": {body['reason']}"
        if body.get("note") and kind != "owner.named":
            words += f" — “{body['note']}”"
    except (KeyError, TypeError, ValueError):
        pass  # a claim from a line that failed its check may have any shape
    return str(words)


# -- HTML ------------------------------------------------------------------------------------


def render_html(report: Report) -> str:
    """The report as one standalone page (inline stylesheet, no script, works offline)."""
    template = _PAGES.get_template("signed_copy.html")
    return template.render(r=report, css=Markup(_CSS), tick=TICK, cross=CROSS)


# -- PDF -------------------------------------------------------------------------------------


def render_pdf(report: Report) -> bytes:
    """The report as a PDF (A4, DejaVu Sans embedded): ``accord.service.report_pdf``,
    imported here so that loading this module (every page server does) spares fpdf."""
    from accord.service.report_pdf import render_pdf as render

    return render(report)
