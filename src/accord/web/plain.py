"""The case in the customer's words: one sentence for each event of the log, and one for
each proposed change, in the customer's language.

No internal terms reach the customer: no channel ("via api"), no party or activity slug,
no hash, no ISO time, no "owner" jargon. ``sentence`` covers every event type of
``accord.core.bodies.EVENT_TYPES`` (a test holds it to that); ``change_sentence`` every
kind of proposed change. Whatever the log quotes from a person (a note, a reason) is
returned apart by ``quote``, so the page shows it as their words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_skeleton
from babel.numbers import format_currency, format_decimal

from accord.core.timefmt import parse_time
from accord.service.ownership import SYSTEM_MEMBER
from accord.web.i18n import format_locale, translations

CHANGE_TOPIC = "change-request"
"""The topic a customer's "Ask for a change" opens: the members see the request as an
open topic, so the case cannot be resolved until somebody answers it."""
CHANGE_TOPIC_TITLE = "Change request"


@dataclass(frozen=True)
class Words:
    """What a sentence needs: the language, the zone times are shown in, and the case."""

    lang: str
    zone: ZoneInfo
    state: Mapping[str, Any]  # the case state (a bare one where no case is known yet)
    me: str

    @property
    def _(self) -> Callable[[str], str]:
        return translations(self.lang).gettext

    def ngettext(self, one: str, many: str, n: int) -> str:
        return translations(self.lang).ngettext(one, many, n)

    @property
    def locale(self) -> str:
        return format_locale(self.lang)

    def moment(self, value: str | datetime | None) -> str:
        """A log time, for people: "Tue 24 Nov, 09:00" in the customer's language."""
        if not value:
            return ""
        moment = parse_time(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo("UTC"))
        day = format_skeleton("MMMEd", moment, tzinfo=self.zone, locale=self.locale)
        time = format_datetime(moment, "HH:mm", tzinfo=self.zone, locale=self.locale)
        return self._("%(day)s, %(time)s") % {"day": day, "time": time}

    def value(self, value: dict[str, Any]) -> str:
        """A typed value in words: money with its symbol, dates in the customer's way."""
        _ = self._
        kind = value.get("type")
        if kind == "money":
            shown = format_currency(value["amount"], value["currency"], locale=self.locale)
            per = {
                "day": _("%(amount)s a day"),
                "week": _("%(amount)s a week"),
                "month": _("%(amount)s a month"),
                "year": _("%(amount)s a year"),
            }.get(value.get("per") or "once")
            return per % {"amount": shown} if per else shown
        if kind == "number":
            number = format_decimal(value["value"], locale=self.locale)
            return f"{number} {value['unit']}" if value.get("unit") else number
        if kind == "date":
            return format_date(date.fromisoformat(value["value"]), "long", locale=self.locale)
        if kind == "datetime":
            return self.moment(value["value"])
        if kind == "boolean":
            return _("yes") if value["value"] else _("no")
        if kind == "file":
            return str(value["name"])
        return str(value.get("value", ""))

    def party(self, party: str | None) -> str:
        """A party by its name; the customer's own is "you"."""
        if party == self.me:
            return self._("you")
        if party is None:
            return self._("someone")
        return str(self.state["parties"].get(party, {}).get("name") or self._("another party"))

    def person(self, event: dict[str, Any]) -> str:
        """Who wrote an event: the person, or their organisation when the system wrote it."""
        author = event.get("author", {})
        member = author.get("member")
        if author.get("party") == self.me:
            return self._("You")
        if not member or member == SYSTEM_MEMBER:
            return self.party(author.get("party"))
        return str(member)

    def activity_title(self, activity: str) -> str:
        agreed = self.state["terms"]["activities"].get(activity)
        if agreed is not None:
            return str(agreed["title"])
        progress = self.state["progress"].get(activity, {})
        return str(progress.get("title") or self._("a task"))

    def topic_title(self, topic: str) -> str:
        if topic == CHANGE_TOPIC:
            return self._("Change requests")
        return str(self.state["topics"].get(topic, {}).get("title") or self._("a topic"))


def _mine(event: dict[str, Any], w: Words) -> bool:
    return bool(event.get("author", {}).get("party") == w.me)


def _opened(e: dict[str, Any], w: Words) -> str:
    title = {"title": e["body"]["title"]}
    if _mine(e, w):
        return w._("You opened this case: “%(title)s”.") % title
    return w._("The case “%(title)s” was opened.") % title


def _message(e: dict[str, Any], w: Words) -> str:
    files = len(e["body"].get("attachments", []))
    text = w._("You wrote:") if _mine(e, w) else w._("%(who)s wrote:") % {"who": w.person(e)}
    if files:
        text += " " + w.ngettext("(with %(n)s file)", "(with %(n)s files)", files) % {"n": files}
    return text


def _topic_opened(e: dict[str, Any], w: Words) -> str:
    if e["body"]["topic"] == CHANGE_TOPIC:
        if _mine(e, w):
            return w._("You asked for a change.")
        return w._("%(who)s asked for a change.") % {"who": w.person(e)}
    title = {"title": e["body"]["title"], "who": w.person(e)}
    if _mine(e, w):
        return w._("You raised the subject “%(title)s”.") % title
    return w._("%(who)s raised the subject “%(title)s”.") % title


def _topic_closed(e: dict[str, Any], w: Words) -> str:
    title = {"title": w.topic_title(e["body"]["topic"]), "who": w.person(e)}
    if _mine(e, w):
        return w._("You closed the subject “%(title)s”.") % title
    return w._("%(who)s closed the subject “%(title)s”.") % title


def _data_set(e: dict[str, Any], w: Words) -> str:
    body = e["body"]
    value = body["value"]
    args = {"who": w.person(e), "what": body.get("label") or w.value(value)}
    if value.get("type") == "file":
        args["what"] = body.get("label") or value["name"]
        if _mine(e, w):
            return w._("You added a file: %(what)s.") % args
        return w._("%(who)s added a file: %(what)s.") % args
    args.update(what=body.get("label") or w._("a detail"), value=w.value(value))
    if _mine(e, w):
        return w._("You shared %(what)s: %(value)s.") % args
    return w._("%(who)s shared %(what)s: %(value)s.") % args


def _activity_updated(e: dict[str, Any], w: Words) -> str:
    args = {"who": w.person(e), "task": w.activity_title(e["body"]["activity"])}
    done = e["body"]["state"] == "done"
    if _mine(e, w):
        if done:
            return w._("You finished “%(task)s”.") % args
        return w._("You started “%(task)s”.") % args
    if done:
        return w._("%(who)s finished “%(task)s”.") % args
    return w._("%(who)s started on “%(task)s”.") % args


def _proposal_made(e: dict[str, Any], w: Words) -> str:
    body = e["body"]
    n = len(body["changes"])
    args = {"who": w.person(e), "n": n}
    if body.get("counter_of"):
        if _mine(e, w):
            return w._("You answered with a suggestion of your own.")
        return w._("%(who)s answered with a different suggestion.") % args
    if body.get("rebase_of"):
        if _mine(e, w):
            return w._("You made your suggestion again.")
        return w._("%(who)s made their suggestion again.") % args
    if _mine(e, w):
        return w.ngettext("You suggested a change.", "You suggested %(n)s changes.", n) % args
    return w.ngettext("%(who)s suggested a change.", "%(who)s suggested %(n)s changes.", n) % args


def _accepted(e: dict[str, Any], w: Words) -> str:
    if _mine(e, w):
        return w._("You said yes to a suggestion.")
    return w._("%(who)s said yes to a suggestion.") % {"who": w.person(e)}


def _rejected(e: dict[str, Any], w: Words) -> str:
    if _mine(e, w):
        return w._("You said no to a suggestion.")
    return w._("%(who)s said no to a suggestion.") % {"who": w.person(e)}


def _withdrawn(e: dict[str, Any], w: Words) -> str:
    if _mine(e, w):
        return w._("You took back a suggestion.")
    return w._("%(who)s took back a suggestion.") % {"who": w.person(e)}


def _committed(e: dict[str, Any], w: Words) -> str:
    body = e["body"]
    args = {"who": w.person(e), "task": body["title"], "when": w.moment(body.get("due"))}
    mine = _mine(e, w)
    if body["kind"] == "callback":
        if mine:
            return w._("You promised a call by %(when)s.") % args
        return w._("%(who)s promised to call you by %(when)s.") % args
    if body.get("due"):
        if mine:
            return w._("You promised “%(task)s” by %(when)s.") % args
        return w._("%(who)s promised “%(task)s” by %(when)s.") % args
    if mine:
        return w._("You promised “%(task)s”.") % args
    return w._("%(who)s promised “%(task)s”.") % args


def _satisfied(e: dict[str, Any], w: Words) -> str:
    anyway = "reason" in e["body"]
    if _mine(e, w):
        if anyway:
            return w._("You closed your side although some work was still open.")
        return w._("You said you are satisfied.")
    args = {"who": w.person(e)}
    if anyway:
        return w._("%(who)s closed their side although some work was still open.") % args
    return w._("%(who)s said they are satisfied.") % args


def _reopened(e: dict[str, Any], w: Words) -> str:
    return w._("The case is open again.")


def _status(e: dict[str, Any], w: Words) -> str:
    return w._("The case is now “%(status)s”.") % {"status": e["body"]["label"]}


def _owner_named(e: dict[str, Any], w: Words) -> str:
    args = {"name": e["body"]["name"], "party": w.party(e.get("author", {}).get("party"))}
    if _mine(e, w):
        return w._("You named %(name)s as your contact for this case.") % args
    return w._("%(name)s at %(party)s now looks after your case.") % args


SENTENCES: dict[str, Callable[[dict[str, Any], Words], str]] = {
    "case.opened": _opened,
    "message.posted": _message,
    "topic.opened": _topic_opened,
    "topic.closed": _topic_closed,
    "data.set": _data_set,
    "activity.updated": _activity_updated,
    "proposal.made": _proposal_made,
    "proposal.accepted": _accepted,
    "proposal.rejected": _rejected,
    "proposal.withdrawn": _withdrawn,
    "activity.committed": _committed,
    "party.satisfied": _satisfied,
    "case.reopened": _reopened,
    "status.set": _status,
    "owner.named": _owner_named,
}


def sentence(event: dict[str, Any], words: Words) -> str:
    """One event of the case's timeline (``accord.service.views.event_summary``) as a
    sentence for the customer."""
    say = SENTENCES.get(event["type"])
    if say is None:  # a type from a newer node: say that something happened, not what
        return words._("The case was updated.")
    return say(event, words)


def quote(event: dict[str, Any]) -> str | None:
    """A person's own words an event carries (a note, a reason), shown as a quotation."""
    body = event["body"]
    kind = event["type"]
    words: str | None = None
    if kind in ("proposal.rejected", "proposal.withdrawn"):
        words = body.get("reason")
    elif kind in ("proposal.made", "activity.updated", "activity.committed", "party.satisfied"):
        words = body.get("note") or body.get("reason")
    return words


def change_sentence(change: dict[str, Any], w: Words) -> str:
    """One proposed change, in the customer's words."""
    _ = w._
    op = change["op"]
    if op == "activity.put":
        mine = change["owner"] == w.me
        args = {
            "who": w.party(change["owner"]),
            "task": change["title"],
            "when": w.moment(change.get("due")),
        }
        if change["kind"] == "callback":
            if mine:
                return _("You call back by %(when)s.") % args
            return _("%(who)s calls you back by %(when)s.") % args
        if change.get("due"):
            if mine:
                return _("You do “%(task)s” by %(when)s.") % args
            return _("%(who)s does “%(task)s” by %(when)s.") % args
        if mine:
            return _("You do “%(task)s”.") % args
        return _("%(who)s does “%(task)s”.") % args
    if op == "activity.remove":
        return _("“%(task)s” is cancelled.") % {"task": w.activity_title(change["activity"])}
    if op == "data.put":
        label = change.get("label") or w.state["terms"]["data"].get(change["key"], {}).get("label")
        args = {"what": label or _("A detail"), "value": w.value(change["value"])}
        return _("%(what)s: %(value)s.") % args
    if op == "data.remove":
        item = w.state["terms"]["data"].get(change["key"], {})
        return _("“%(what)s” is taken out of the agreement.") % {
            "what": item.get("label") or _("A detail")
        }
    if op == "party.add":
        return _("%(name)s joins your case.") % {"name": change["party"]["name"]}
    if op == "party.key":
        if change["party"] == w.me:
            return _("You keep your own copy of the case from now on.")
        return _("%(name)s keeps its own copy of the case from now on.") % {
            "name": w.party(change["party"])
        }
    return _("Another change to the agreement.")


def joining(proposal: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The parties a proposal would add to the case (each needs the customer's informed
    consent: they would see the whole history)."""
    return [c["party"] for c in proposal["changes"] if c["op"] == "party.add"]
