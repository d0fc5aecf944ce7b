"""The agreement as a picture: a server-rendered SVG swimlane.

One lane per party; each activity sits on a time axis at its due time, drawn by state
(agreed, in progress, done, cancelled, overdue), and the activities of pending proposals
are drawn dashed as changes not yet agreed. Activities without a due time sit in a column
of their own at the right. "Now" is a line across every lane. The same picture serves
the members' case page and the customer's portal; its ``<title>`` and ``<desc>`` say in
words what it shows, for screen readers.

Readable at any size: each label is placed where it fits whole (right of its mark, else
left of it) and on the first row of its lane where it overlaps nothing, the lane growing
as rows are needed, so labels are cut only when no row could hold them whole; every due
time is written on the axis (on as many rows as they need); below 600 px the picture
gives way to a stacked list of the same activities (``render`` draws both, the stylesheet
shows one), so a phone never scrolls sideways.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from accord.core.activities import is_open
from accord.core.state import State
from accord.core.timefmt import parse_time

WIDTH = 900
LABEL_W = 150
ROW_H = 20
LANE_PAD = 12
TOP = 22  # the ticks' labels above the due-time band
DUE_ROW_H = 14
UNDATED_W = 170
CHAR_W = 7.0  # a 12 px system-font character, generously: a label is never wider
DUE_CHAR_W = 6.2  # a 10 px one
GAP = 8
STYLE = {
    "agreed": ("#1f5fa8", "#dbe8f7"),
    "in_progress": ("#8a5a00", "#fcebc6"),
    "done": ("#1d6b3a", "#d6f0de"),
    "cancelled": ("#6b6b6b", "#ececec"),
    "overdue": ("#a31515", "#f9dcdc"),
    "proposed": ("#5b3fa0", "#ffffff"),
}
STATE_WORDS = {
    "agreed": "agreed",
    "in_progress": "in progress",
    "done": "done",
    "cancelled": "cancelled",
    "overdue": "overdue",
    "proposed": "proposed, not yet agreed",
}


@dataclass(frozen=True)
class Mark:
    party: str
    title: str
    kind: str
    due: datetime | None
    look: str  # a key of STYLE
    topic: str = ""  # the title of the topic the activity belongs to, if any


def marks(state: State, now: datetime) -> list[Mark]:
    """Every activity of the agreement and of pending proposals, as drawn."""
    found: list[Mark] = []
    topics = state.get("topics") or {}

    def topic_of(slug: str | None) -> str:
        return (topics[slug]["title"] if slug in topics else slug) if slug else ""

    for aid, progress in state["progress"].items():
        activity: Mapping[str, Any] = state["terms"]["activities"].get(aid) or {}
        due = parse_time(activity["due"]) if activity.get("due") else None
        look = progress["state"]
        if is_open(look) and due is not None and due < now:
            look = "overdue"
        found.append(
            Mark(
                party=activity.get("owner") or progress.get("owner") or "?",
                title=activity.get("title") or progress.get("title") or aid,
                kind=activity.get("kind", "task"),
                due=due,
                look=look,
                topic=topic_of(activity.get("topic")),
            )
        )
    for proposal in state["proposals"].values():
        if proposal["state"] != "pending":
            continue
        for change in proposal["changes"]:
            if change["op"] == "activity.put":
                found.append(
                    Mark(
                        party=change["owner"],
                        title=change["title"],
                        kind=change["kind"],
                        due=parse_time(change["due"]) if change.get("due") else None,
                        look="proposed",
                        topic=topic_of(change.get("topic")),
                    )
                )
    return found


def _ticks(
    start: datetime, end: datetime, zone: ZoneInfo, fmt: Callable[[str], str]
) -> list[tuple[datetime, str]]:
    span = end - start
    step = timedelta(hours=6) if span <= timedelta(days=2) else timedelta(days=1)
    if span > timedelta(days=21):
        step = timedelta(days=7)
    local = start.astimezone(zone)
    first = local.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        first = first.replace(hour=0)
    out: list[tuple[datetime, str]] = []
    tick = first
    while tick <= end.astimezone(zone) and len(out) < 40:
        if tick >= local:
            label = (
                tick.strftime("%a %d %b")
                if step >= timedelta(days=1)
                else tick.strftime(fmt("%a %H:%M"))
            )
            out.append((tick, label))
        tick = (tick + step).astimezone(zone)
    return out


def _width(text: str, char_w: float = CHAR_W) -> float:
    return len(text) * char_w


def _row(rows: list[list[tuple[float, float]]], lo: float, hi: float) -> int:
    """The first row whose spans all miss ``[lo, hi]`` (a new row if none)."""
    for i, spans in enumerate(rows):
        if all(hi + GAP <= a or lo >= b + GAP for a, b in spans):
            spans.append((lo, hi))
            return i
    rows.append([(lo, hi)])
    return len(rows) - 1


@dataclass(frozen=True)
class Placed:
    mark: Mark
    x: float
    row: int
    label: str
    label_x: float
    anchor: str  # "start" (right of the mark) or "end" (left of it)


def _place(
    lane_marks: list[tuple[Mark, float]], x_min: float, x_max: float, undated_x: float
) -> tuple[list[Placed], int]:
    """Each mark of a lane with its row and its label's place; and how many rows."""
    rows: list[list[tuple[float, float]]] = []
    placed: list[Placed] = []
    for m, x in lane_marks:
        label = m.title + (f" · {m.topic}" if m.topic else "") + (" ✓" if m.look == "done" else "")
        if m.due is None:  # the column at the right: the label goes right, cut to the edge
            room = WIDTH - 6 - (x + 10)
            label = _short(label, max(4, int(room // CHAR_W)))
            row = _row(rows, x - 8, x + 10 + _width(label))
            placed.append(Placed(m, x, row, label, x + 10, "start"))
            continue
        room = max(x_max - (x + 10), (x - 10) - x_min)
        if _width(label) > room:  # no row could hold it whole: cut to the widest room
            label = _short(label, max(4, int(room // CHAR_W)))
        w = _width(label)
        right = x + 10 + w <= x_max
        left = x - 10 - w >= x_min
        options = [("start", x - 8, x + 10 + w)] if right else []
        if left:
            options.append(("end", x - 10 - w, x + 8))
        if not options:
            options = [("start", x - 8, x + 10 + w)]
        best: tuple[int, str, float, float] | None = None
        for anchor, lo, hi in options:  # the lowest row of either side
            free = next(
                (
                    i
                    for i, spans in enumerate(rows)
                    if all(hi + GAP <= a or lo >= b + GAP for a, b in spans)
                ),
                len(rows),
            )
            if best is None or free < best[0]:
                best = (free, anchor, lo, hi)
        assert best is not None
        free, anchor, lo, hi = best
        if free == len(rows):
            rows.append([])
        rows[free].append((lo, hi))
        label_x = x + 10 if anchor == "start" else x - 10
        placed.append(Placed(m, x, free, label, label_x, anchor))
    del undated_x
    return placed, max(1, len(rows))


def render(
    state: State,
    now: datetime,
    zone: ZoneInfo,
    *,
    fmt: Callable[[str], str] = lambda pattern: pattern,
) -> Markup:
    """The SVG of ``state``'s agreement and pending proposals, as of ``now``, with the
    same as a stacked list for narrow screens; ``fmt`` turns a strftime pattern into the
    reader's clock (12- or 24-hour)."""
    parties = list(state["parties"].items())
    drawn = marks(state, now)
    dated = [m.due for m in drawn if m.due is not None]
    start = min([now, *dated]) - timedelta(hours=6)
    end = max([now + timedelta(days=1), *dated]) + timedelta(hours=6)
    axis_x0, axis_x1 = LABEL_W + 10, WIDTH - UNDATED_W - 20
    undated_x = float(axis_x1 + 34)

    def x_of(moment: datetime) -> float:
        share = (moment - start) / (end - start)
        return round(axis_x0 + share * (axis_x1 - axis_x0), 1)

    def due_words(m: Mark) -> str:
        return m.due.astimezone(zone).strftime(fmt("%a %d %b %H:%M")) if m.due else "no due time"

    # each due time on the axis, its label on the first row where it fits
    due_rows: list[list[tuple[float, float]]] = []
    due_labels: list[tuple[float, int, str]] = []
    for moment in sorted(set(dated)):
        x = x_of(moment)
        text = moment.astimezone(zone).strftime(fmt("%d %b %H:%M"))
        w = _width(text, DUE_CHAR_W)
        lo = min(max(x - w / 2, axis_x0 - 6), axis_x1 + 6 - w)
        due_labels.append((lo, _row(due_rows, lo, lo + w), text))
    band = TOP + 8 + DUE_ROW_H * len(due_rows)

    lanes = {pid: i for i, (pid, _) in enumerate(parties)}
    by_lane: dict[str, list[tuple[Mark, float]]] = {pid: [] for pid in lanes}
    for m in sorted(drawn, key=lambda m: (m.due is None, m.due or now, m.title)):
        if m.party in by_lane:
            by_lane[m.party].append((m, x_of(m.due) if m.due is not None else undated_x))
    layout: dict[str, tuple[list[Placed], float, float]] = {}
    y = float(band)
    for pid in lanes:
        placed, rows = _place(by_lane[pid], axis_x0 - 6, float(axis_x1 + 14), undated_x)
        height = LANE_PAD * 2 + rows * ROW_H
        layout[pid] = (placed, y, height)
        y += height
    height_total = y + 18

    words = []
    for m in drawn:
        who = state["parties"][m.party]["name"] if m.party in state["parties"] else m.party
        about = f", topic {m.topic}" if m.topic else ""
        words.append(f"{who}: {m.title} ({m.kind}{about}), {due_words(m)}, {STATE_WORDS[m.look]}")
    title = f"Who does what by when: {len(drawn)} activities across {len(parties)} parties"
    desc = "; ".join(words) if words else "No activities agreed or proposed yet."
    out = [
        '<div class="swim-wide">',
        f'<svg class="swimlane" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height_total:g}" role="img" '
        'aria-labelledby="swim-title swim-desc">',
        f'<title id="swim-title">{escape(title)}</title>',
        f'<desc id="swim-desc">{escape(desc)}</desc>',
    ]
    for pid, i in lanes.items():
        _, top, h = layout[pid]
        fill = "#f6f8fa" if i % 2 == 0 else "#ffffff"
        name = escape(_short(state["parties"][pid]["name"], int((LABEL_W - 14) // 7.6)))
        out.append(
            f'<rect x="0" y="{top:g}" width="{WIDTH}" height="{h:g}" fill="{fill}"/>'
            f'<text x="10" y="{top + min(h / 2, 28) + 4:g}" font-size="13" font-weight="600" '
            f'fill="#1b2733">{name}</text>'
        )
    for tick, label in _ticks(start, end, zone, fmt):
        x = x_of(tick)
        out.append(
            f'<line x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{height_total - 12:g}" stroke="#e3e6ea"/>'
            f'<text x="{x + 3}" y="{TOP - 8}" font-size="11" fill="#4a5562">'
            f"{escape(label)}</text>"
        )
    for moment, (lo, row, text) in zip(sorted(set(dated)), due_labels, strict=True):
        x = x_of(moment)
        ty = TOP + 8 + row * DUE_ROW_H + 9
        out.append(
            f'<g class="due-tick"><line x1="{x}" y1="{ty + 3}" x2="{x}" y2="{band:g}" '
            f'stroke="#8a96a3"/><text x="{lo:g}" y="{ty}" font-size="10" fill="#3d4852">'
            f"{escape(text)}</text></g>"
        )
    out.append(
        f'<line x1="{axis_x1 + 20}" y1="{TOP - 18}" x2="{axis_x1 + 20}" '
        f'y2="{height_total - 12:g}" stroke="#8a96a3" stroke-dasharray="2 3"/>'
        f'<text x="{axis_x1 + 26}" y="{TOP - 8}" font-size="11" fill="#4a5562">no due time</text>'
    )
    now_x = x_of(now)
    out.append(
        f'<line x1="{now_x}" y1="{band - 4:g}" x2="{now_x}" y2="{height_total - 12:g}" '
        f'stroke="#a31515" stroke-dasharray="4 3"/><text x="{now_x + 3}" '
        f'y="{height_total - 2:g}" font-size="11" fill="#a31515">now</text>'
    )
    for pid in lanes:
        placed, top, _h = layout[pid]
        for p in placed:
            m, x = p.mark, p.x
            cy = top + LANE_PAD + p.row * ROW_H + ROW_H / 2
            stroke, fill = STYLE[m.look]
            dash = ' stroke-dasharray="3 2"' if m.look == "proposed" else ""
            shape = (
                f'<path d="M{x} {cy - 6:g} L{x + 6} {cy:g} L{x} {cy + 6:g} L{x - 6} {cy:g} Z" '
                f'fill="{fill}" stroke="{stroke}" stroke-width="2"{dash}/>'
                if m.kind == "callback"
                else f'<circle cx="{x}" cy="{cy:g}" r="6" fill="{fill}" stroke="{stroke}" '
                f'stroke-width="2"{dash}/>'
            )
            decoration = ' text-decoration="line-through"' if m.look == "cancelled" else ""
            anchor = ' text-anchor="end"' if p.anchor == "end" else ""
            out.append(
                f'<g class="mark {m.look}">{shape}<text x="{p.label_x:g}" y="{cy + 4:g}" '
                f'font-size="12" fill="{stroke}"{anchor}{decoration}>{escape(p.label)}</text></g>'
            )
    out.append("</svg></div>")
    out.append(_list(state, drawn, due_words))
    return Markup("".join(out))


def _list(state: State, drawn: list[Mark], due_words: Callable[[Mark], str]) -> str:
    """The same activities as a list, party by party (shown instead below 600 px)."""
    items = []
    for pid, party in state["parties"].items():
        mine = sorted(
            (m for m in drawn if m.party == pid), key=lambda m: (m.due is None, m.due, m.title)
        )
        rows = "".join(
            f'<li class="swim-item {m.look}"><span class="what">'
            f"{'◆ ' if m.kind == 'callback' else '● '}{escape(m.title)}</span> "
            f'<span class="meta">{escape(due_words(m))} · {STATE_WORDS[m.look]}'
            f"{' · ' + escape(m.topic) if m.topic else ''}</span></li>"
            for m in mine
        )
        if rows:
            items.append(f"<li><strong>{escape(party['name'])}</strong><ul>{rows}</ul></li>")
    if not items:
        return '<p class="swim-list empty">No activities agreed or proposed yet.</p>'
    return f'<ul class="swim-list" aria-label="Who does what, by when">{"".join(items)}</ul>'


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
