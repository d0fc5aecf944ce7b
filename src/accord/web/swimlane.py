"""The agreement as a picture: a server-rendered SVG swimlane.

One lane per party; each activity sits on a time axis at its due time, drawn by state
(agreed, in progress, done, cancelled, overdue), and the activities of pending proposals
are drawn dashed as changes not yet agreed. Activities without a due time sit in a column
of their own at the right. "Now" is a line across every lane. The same picture serves
the members' case page and the customer's portal; its ``<title>`` and ``<desc>`` say in
words what it shows, for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from accord.core.state import State
from accord.core.timefmt import parse_time

WIDTH = 900
LABEL_W = 160
LANE_H = 70
TOP = 34
UNDATED_W = 110
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


def marks(state: State, now: datetime) -> list[Mark]:
    """Every activity of the agreement and of pending proposals, as drawn."""
    found: list[Mark] = []
    for aid, progress in state["progress"].items():
        activity = state["terms"]["activities"].get(aid) or {}
        due = parse_time(activity["due"]) if activity.get("due") else None
        look = progress["state"]
        if look in ("agreed", "in_progress") and due is not None and due < now:
            look = "overdue"
        found.append(
            Mark(
                party=activity.get("owner") or progress.get("owner") or "?",
                title=activity.get("title") or progress.get("title") or aid,
                kind=activity.get("kind", "task"),
                due=due,
                look=look,
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
                    )
                )
    return found


def _ticks(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
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
                else tick.strftime("%a %H:%M")
            )
            out.append((tick, label))
        tick = (tick + step).astimezone(zone)
    return out


def render(state: State, now: datetime, zone: ZoneInfo) -> Markup:
    """The SVG of ``state``'s agreement and pending proposals, as of ``now``."""
    parties = list(state["parties"].items())
    drawn = marks(state, now)
    dated = [m.due for m in drawn if m.due is not None]
    start = min([now, *dated]) - timedelta(hours=6)
    end = max([now + timedelta(days=1), *dated]) + timedelta(hours=6)
    axis_x0, axis_x1 = LABEL_W + 10, WIDTH - UNDATED_W - 20
    height = TOP + LANE_H * max(1, len(parties)) + 16

    def x_of(moment: datetime) -> float:
        share = (moment - start) / (end - start)
        return round(axis_x0 + share * (axis_x1 - axis_x0), 1)

    words = []
    for m in drawn:
        when = m.due.astimezone(zone).strftime("%a %d %b %H:%M") if m.due else "no due time"
        who = state["parties"].get(m.party, {}).get("name", m.party)
        words.append(f"{who}: {m.title} ({m.kind}), {when}, {STATE_WORDS[m.look]}")
    title = f"Who does what by when: {len(drawn)} activities across {len(parties)} parties"
    desc = "; ".join(words) if words else "No activities agreed or proposed yet."
    out = [
        f'<svg class="swimlane" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}"'
        ' role="img" aria-labelledby="swim-title swim-desc">',
        f'<title id="swim-title">{escape(title)}</title>',
        f'<desc id="swim-desc">{escape(desc)}</desc>',
    ]
    for tick, label in _ticks(start, end, zone):
        x = x_of(tick)
        out.append(
            f'<line x1="{x}" y1="{TOP - 6}" x2="{x}" y2="{height - 12}" stroke="#e3e6ea"/>'
            f'<text x="{x + 3}" y="{TOP - 12}" font-size="11" fill="#4a5562">'
            f"{escape(label)}</text>"
        )
    out.append(
        f'<line x1="{axis_x1 + 20}" y1="{TOP - 18}" x2="{axis_x1 + 20}" y2="{height - 12}" '
        'stroke="#8a96a3" stroke-dasharray="2 3"/>'
        f'<text x="{axis_x1 + 30}" y="{TOP - 12}" font-size="11" fill="#4a5562">no due time</text>'
    )
    lanes = {pid: i for i, (pid, _) in enumerate(parties)}
    for pid, i in lanes.items():
        y = TOP + i * LANE_H
        fill = "#f6f8fa" if i % 2 == 0 else "#ffffff"
        out.append(
            f'<rect x="0" y="{y}" width="{WIDTH}" height="{LANE_H}" fill="{fill}"/>'
            f'<text x="10" y="{y + LANE_H / 2 + 4}" font-size="13" font-weight="600" '
            f'fill="#1b2733">{escape(_short(state["parties"][pid]["name"], 20))}</text>'
        )
    now_x = x_of(now)
    out.append(
        f'<line x1="{now_x}" y1="{TOP - 4}" x2="{now_x}" y2="{height - 12}" stroke="#a31515" '
        f'stroke-dasharray="4 3"/><text x="{now_x + 3}" y="{height - 2}" font-size="11" '
        'fill="#a31515">now</text>'
    )
    placed: dict[str, list[float]] = {}
    for m in sorted(drawn, key=lambda m: (m.due is None, m.due or now)):
        lane = lanes.get(m.party)
        if lane is None:
            continue
        x = x_of(m.due) if m.due is not None else float(axis_x1 + 45)
        taken = placed.setdefault(m.party, [])
        row = sum(1 for other in taken if abs(other - x) < 120) % 3
        taken.append(x)
        y = TOP + lane * LANE_H + 16 + row * 18
        stroke, fill = STYLE[m.look]
        dash = ' stroke-dasharray="3 2"' if m.look == "proposed" else ""
        shape = (
            f'<path d="M{x} {y - 6} L{x + 6} {y} L{x} {y + 6} L{x - 6} {y} Z" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="2"{dash}/>'
            if m.kind == "callback"
            else f'<circle cx="{x}" cy="{y}" r="6" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="2"{dash}/>'
        )
        label = _short(m.title, 22) + (" ✓" if m.look == "done" else "")
        decoration = ' text-decoration="line-through"' if m.look == "cancelled" else ""
        out.append(
            f'<g class="mark {m.look}">{shape}<text x="{x + 10}" y="{y + 4}" font-size="12" '
            f'fill="{stroke}"{decoration}>{escape(label)}</text></g>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
