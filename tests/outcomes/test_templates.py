"""Template files: checking, canonical versions, diff, round trip, business-time due
times on opening, and deviations counted against the version a case came from."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.service.errors import Invalid
from accord.templates.spec import TemplateError, TemplateSpec, diff_specs, parse_due, parse_ref
from tests.outcomes.helpers import CUSTOMER, TOM, Desk, make_desk

BILLING = """
name: billing
title: Billing dispute
topics: [{topic: bill, title: The disputed bill}]
data:
  - {key: account, label: Account number}
  - {key: plan, label: Plan, value: {type: text, value: Fibre 100}}
activities: [{activity: review, title: Review the bill, due: 4h}]
callbacks: [{activity: call, title: Call back, due: 30m, owner: us}]
"""


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    made = make_desk(tmp_path, database_url)
    yield made
    made.node.close()


def test_spec_checks_fields_and_round_trips() -> None:
    spec = TemplateSpec.parse(BILLING)
    assert spec.items == {"data:account", "data:plan", "activity:review", "activity:call"}
    again = TemplateSpec.parse(spec.to_yaml(3))
    assert again.canonical() == spec.canonical()
    for text, message in (
        ("name: Billing", "name must be a short id"),
        ("name: b\ncallbacks: [{activity: c, title: C}]", "callbacks[0].due is required"),
        ("name: b\nactivities: [{activity: c, title: C, due: soon}]", "due 'soon'"),
        ("name: b\ncolour: red", "colour is not a template field"),
        ("name: b\ndata: [{key: a, label: A}, {key: a, label: B}]", "a data key appears twice"),
        ("name: b\nsla: {first_response: 0}", "sla.first_response"),
        ("[unclosed", "not YAML"),
        (
            "name: b\ndata: [{key: a, label: A, type: money, value: {type: money}}]",
            "data[0].value.amount: is required",
        ),
        (
            "name: b\ndata: [{key: a, label: A, value: {type: number, value: '1'}}]",
            "data[0].value is not of type text",
        ),
    ):
        with pytest.raises(TemplateError, match=re.escape(message)):
            TemplateSpec.parse(text)
    assert parse_due("90m").total_seconds() == 5400 and parse_due("2d").total_seconds() == 57600
    assert parse_ref("billing@v12") == ("billing", 12) and parse_ref("billing") == ("billing", None)
    changed = TemplateSpec.parse(
        BILLING.replace("due: 4h", "due: 8h").replace(
            "  - {key: account, label: Account number}\n", ""
        )
    )
    assert diff_specs(spec, changed) == [
        '- data.account: {"key":"account","label":"Account number","type":"text"}',
        '~ activities.review: {"activity":"review","due":"4h","kind":"task","owner":"us",'
        '"title":"Review the bill"} -> {"activity":"review","due":"8h","kind":"task",'
        '"owner":"us","title":"Review the bill"}',
    ]


def test_opening_from_a_template(desk: Desk) -> None:
    first, created = desk.templates.apply(BILLING, by="test")
    assert (first.version, created) == (1, True)
    assert desk.templates.apply(BILLING, by="test")[1] is False
    with pytest.raises(Invalid, match=r"routing\.team: no team"):
        desk.templates.apply(BILLING + "routing: {team: Nobody}\n", by="test")
    desk.templates.apply(BILLING.replace("due: 30m", "due: 1h"), by="test")  # v2
    desk.clock.set("2026-11-06 16:00")  # Friday, an hour before closing
    opened = desk.templates.open_case(
        TOM,
        "billing",
        version=1,
        title="Bill too high",
        party_id="northwind",
        party_name="Northwind",
        customer=CUSTOMER,
        member=desk.members["tom"],
    )
    assert (opened.template, opened.version, opened.owner) == ("billing", 1, "Tom Baker")
    state = desk.negotiation.state(opened.case_id)
    assert state["template"] == "billing" and set(state["topics"]) == {"bill"}
    assert state["info"]["plan"]["value"] == {"type": "text", "value": "Fibre 100"}
    (plan,) = state["proposals"].values()
    due = {c["activity"]: c["due"] for c in plan["changes"]}
    # 4 business hours from Friday 16:00 is Monday 12:00; 30 minutes is Friday 16:30.
    assert due == {"review": "2026-11-09T12:00:00Z", "call": "2026-11-06T16:30:00Z"}
    facts = desk.outcomes.store.facts(opened.case_id)
    assert (facts.template, facts.template_version) == ("billing", 1)
    assert facts.deviations == 1  # "account" was never filled in
    desk.negotiation.set_info(TOM, opened.case_id, "account", {"type": "text", "value": "NW-7"})
    desk.negotiation.set_info(TOM, opened.case_id, "router", {"type": "text", "value": "Hub"})
    assert desk.outcomes.store.facts(opened.case_id).deviations == 1  # one item added
    listed = desk.templates.store.list()
    assert [(v["version"], v["cases"]) for v in listed[0]["versions"]] == [(1, 1), (2, 0)]
