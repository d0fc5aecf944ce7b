"""Applying templates and opening cases from them.

Applying a template file stores it as a new version (when it changed) and makes it the
current one: its response targets go into the ``sla`` setting under its name and its
routing becomes the routing rule for cases of that type. Opening a case from a template
writes, as the member who opens it: the case with the template's topics (the log names
the template), each data item that has a starting value, and one proposal with the
template's activities and callbacks due at their relative times (in business time from
opening). The version is recorded node-privately; the case is routed by its rules, or
owned by the member who opened it when nobody is available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accord.auth.members import Member
from accord.core.timefmt import format_time
from accord.service import settings
from accord.service.errors import Conflict, Invalid, NotFound
from accord.service.negotiation import Actor, Negotiation
from accord.service.ownership import Ownership
from accord.service.sla import SETTING as SLA_SETTING
from accord.store.tables import routing_rules
from accord.templates.spec import TemplateError, TemplateSpec, diff_specs, parse_due
from accord.templates.store import TemplateStore, Version

ROUTING_PRIORITY = 50
"""Rules made from templates sort before hand-made rules at the default priority 100."""


@dataclass
class Opened:
    case_id: str
    template: str
    version: int
    event_ids: list[str] = field(default_factory=list)
    owner: str | None = None


class CaseTemplates:
    def __init__(
        self, store: TemplateStore, negotiation: Negotiation, ownership: Ownership
    ) -> None:
        self.store = store
        self.negotiation = negotiation
        self.ownership = ownership
        self.db = store.db

    def check(self, text: str | bytes) -> TemplateSpec:
        """A template file parsed and checked as ``apply`` checks it, without storing it."""
        try:
            spec = TemplateSpec.parse(text)
        except TemplateError as exc:
            raise Invalid(str(exc), field="template") from exc
        routing = spec.data.get("routing")
        if routing and routing.get("team"):
            teams = {t["name"] for t in self.ownership.list_teams()}
            if routing["team"] not in teams:
                raise Invalid(f"routing.team: no team {routing['team']!r}", field="routing")
        return spec

    def preview(self, text: str | bytes) -> tuple[TemplateSpec, int | None, list[str]]:
        """What applying ``text`` would do: the checked template, the version it would
        become (None: unchanged from the latest) and its changes from the latest version."""
        spec = self.check(text)
        try:
            latest = self.store.get(spec.name)
        except NotFound:
            return spec, 1, []
        changes = diff_specs(latest.spec, spec)
        return spec, (latest.version + 1 if changes else None), changes

    def apply(self, text: str | bytes, *, by: str) -> tuple[Version, bool]:
        """Store a template file as its next version (if changed) and make it current."""
        spec = self.check(text)
        version, created = self.store.add(spec, by=by)
        self._activate(spec)
        return version, created

    def _activate(self, spec: TemplateSpec) -> None:
        config = settings.read(self.db, SLA_SETTING) or {}
        if "sla" in spec.data:
            config[spec.name] = {
                "first_response": spec.data["sla"].get("first_response", 60),
                "next_response": spec.data["sla"].get("next_response", 240),
            }
        else:
            config.pop(spec.name, None)
        settings.write(self.db, SLA_SETTING, config)
        with self.db.write() as conn:
            conn.execute(routing_rules.delete().where(routing_rules.c.template == spec.name))
        routing = spec.data.get("routing")
        if routing:
            self.ownership.add_rule(
                priority=ROUTING_PRIORITY,
                team=routing.get("team"),
                skill=routing.get("skill"),
                template=spec.name,
            )

    def open_case(
        self,
        actor: Actor,
        name: str,
        *,
        title: str,
        party_id: str,
        party_name: str,
        version: int | None = None,
        customer: dict[str, Any] | None = None,
        member: Member | None = None,
        party_url: str | None = None,
    ) -> Opened:
        tv = self.store.get(name, version)
        spec = tv.spec.data
        opened = self.negotiation.open_case(
            actor,
            title=title,
            party_id=party_id,
            party_name=party_name,
            customer=customer,
            party_url=party_url,
            topics=spec["topics"],
            template=name,
        )
        case_id = opened.case_id
        with self.db.write() as conn:
            self.store.record_case(conn, case_id, tv.name, tv.version)
        result = Opened(case_id, tv.name, tv.version, list(opened.event_ids))
        for item in spec["data"]:
            if "value" in item:
                done = self.negotiation.set_info(
                    actor, case_id, item["key"], item["value"], label=item["label"]
                )
                result.event_ids += done.event_ids
        changes = self._plan(spec, party_id, customer)
        if changes:
            done = self.negotiation.propose(
                actor, case_id, changes, note=f"The plan for a {spec['title']} case."
            )
            result.event_ids += done.event_ids
        try:
            result.owner = self.ownership.route(case_id).member.display_name
        except Conflict:
            if member is not None:
                result.owner = self.ownership.take(case_id, member).member.display_name
        return result

    def _plan(
        self, spec: dict[str, Any], party_id: str, customer: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        calendar = settings.calendar(self.db)
        now = self.negotiation.now()
        customer_id = customer.get("id", "customer") if customer is not None else None
        changes: list[dict[str, Any]] = []
        for a in spec["activities"]:
            owner = party_id if a["owner"] == "us" else customer_id
            if owner is None:
                continue  # no customer party in this case to do it
            change: dict[str, Any] = {
                "op": "activity.put",
                "activity": a["activity"],
                "title": a["title"],
                "owner": owner,
                "kind": a["kind"],
            }
            if "due" in a:
                change["due"] = format_time(calendar.add(now, parse_due(a["due"])))
            changes.append(change)
        return changes
