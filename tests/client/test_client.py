"""Round trips through the clients: the async one in-process (httpx.ASGITransport), the
sync one over HTTP; refusals arrive as the typed exceptions of accord.client.errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from accord.api.ratelimit import RateLimiter
from accord.client import (
    OPERATIONS,
    AccordAPIError,
    AccordClient,
    AsyncAccordClient,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    StaleProposal,
    Unauthorized,
)
from accord.client.errors import error_from_response
from accord.core.bundle import verify_bundle

from .conftest import PASSWORD, Desk

SUPPLIER = "northwind-broadband"
PRIYA = {"id": "priya", "name": "Priya Shah"}
UNKNOWN = "sha256:" + "0" * 64


def price(amount: str, key: str = "new-price") -> dict[str, Any]:
    value = {"type": "money", "amount": amount, "currency": "GBP", "per": "month"}
    return {"op": "data.put", "key": key, "value": value}


def test_async_client_negotiates_in_process(desk: Desk) -> None:
    async def scenario() -> None:
        async with AsyncAccordClient(desk.url, token=desk.tom, transport=desk.transport()) as tom:
            opened = await tom.open_case(
                "Business broadband contract",
                customer=PRIYA,
                topics=[{"topic": "price", "title": "New price"}],
            )
            case_id = opened["case"]
            assert opened["owner"]["owner"] == {"member": "tom", "name": "Tom Baker"}
            assert (await tom.list_cases())["cases"][0]["case"] == case_id
            await tom.post_message(case_id, "We can offer £20 a month.", topic="price")
            first = (await tom.propose(case_id, [price("20.00")]))["events"][0]
            second = (await tom.propose(case_id, [price("25.00", "old-price")]))["events"][0]
            link = await tom.portal_link(case_id, "priya", "priya@example.com", hours=24)

            async with AsyncAccordClient(
                desk.url, portal=link["path"], transport=desk.transport()
            ) as priya:
                accepted = await priya.portal_accept(first)
                assert accepted["case"] == case_id and len(accepted["events"]) == 1
                with pytest.raises(StaleProposal) as stale:
                    await priya.portal_accept(second)
                assert isinstance(stale.value, Conflict) and stale.value.status == 409
                rebase = stale.value.rebase
                assert rebase["base"] == 1 and rebase["changes"] == [price("25.00", "old-price")]
                view = await priya.portal_case()
                assert view["agreement"]["version"] == 1
                assert view["agreement"]["data"]["new-price"]["value"]["amount"] == "20.00"
                assert verify_bundle(await priya.portal_bundle()).ok
                # the customer's link is no member credential
                with pytest.raises(Unauthorized):
                    await priya.case(case_id)

            again = await tom.propose(case_id, rebase["changes"], base=rebase["base"])
            assert again["case"] == case_id
            with pytest.raises(NotFound) as missing:
                await tom.case(UNKNOWN)
            assert missing.value.error == "not_found" and UNKNOWN in missing.value.message
            with pytest.raises(Invalid) as invalid:
                await tom.propose(case_id, [{**price("1"), "value": {"type": "money"}}])
            assert invalid.value.field == "changes[0].value.amount"
            with pytest.raises(Invalid) as schema:
                await tom.open_case("x" * 301)
            assert schema.value.field == "title" and schema.value.details["errors"]

        async with AsyncAccordClient(
            desk.url, token=desk.reader, transport=desk.transport()
        ) as reader:
            with pytest.raises(Forbidden) as forbidden:
                await reader.post_message(case_id, "hi")
            assert "cases:write" in forbidden.value.message
        async with AsyncAccordClient(
            desk.url, token="acc_forged", transport=desk.transport()
        ) as forged:
            with pytest.raises(Unauthorized):
                await forged.list_cases()

    asyncio.run(scenario())


def visit(due: str = "2099-01-01T09:00:00Z") -> dict[str, Any]:
    return {
        "op": "activity.put",
        "activity": "visit",
        "title": "Engineer visit",
        "owner": SUPPLIER,
        "kind": "task",
        "due": due,
    }


def test_sync_client_over_http(live: Desk) -> None:
    with AccordClient(live.url, token=live.tom) as tom:
        assert tom.health()["status"] == "ok" and tom.ready() == {"status": "ready"}
        assert tom.me()["username"] == "tom"
        case_id = tom.open_case("Moving house", customer=PRIYA)["case"]
        tom.open_topic(case_id, "move", "Moving date")
        tom.set_info(case_id, "address", {"type": "text", "value": "1 High St"}, label="Address")
        token = tom.portal_link(case_id, "priya", "priya@example.com")["token"]
        with AccordClient(live.url, portal=token) as priya:
            first = tom.propose(case_id, [visit()])["events"][0]
            assert priya.portal_reject(first, reason="wrong date")["case"] == case_id
            with pytest.raises(Conflict):
                tom.accept(case_id, first)
            priya.portal_open_topic("price", "The price")
            priya.portal_post_message("Can it be cheaper?", topic="price")
            priya.portal_set_info("phone", {"type": "text", "value": "07700 900000"})
            offer = priya.portal_propose([price("18.00")], note="my offer")["events"][0]
            better = tom.counter(case_id, offer, [price("19.00")], note="meet halfway")
            priya.portal_accept(better["events"][0])
            proposed = tom.propose(case_id, [visit()])["events"][0]
            plan = priya.portal_counter(proposed, [visit("2099-01-02T09:00:00Z")])["events"][0]
            tom.accept(case_id, plan)
            assert priya.portal_case()["agreement"]["version"] == 2
            with pytest.raises(Forbidden):
                priya.portal_progress("visit", "done")  # only the owner party reports
            tom.progress(case_id, "visit", "in_progress", note="on the way")
            tom.progress(case_id, "visit", "done")
            # withdraw, a crossed proposal proposed again, a promise without clicks
            gone = tom.propose(case_id, [price("17.00")])["events"][0]
            assert tom.withdraw(case_id, gone, reason="typo")["case"] == case_id
            crossed = priya.portal_propose([price("16.00")], note="lower")["events"][0]
            priya.portal_accept(tom.propose(case_id, [price("17.50")])["events"][0])
            assert priya.portal_case()["crossed_proposals"][crossed]["crossed_with"] == 3
            again = priya.portal_repropose(crossed)["events"][0]
            tom.accept(case_id, again)
            promise = tom.commit(
                case_id, "call", "Call Priya", "callback", due="2099-01-03T09:00:00Z"
            )
            assert (
                tom.case(case_id)["agreement"]["activities"]["call"]["committed"]["event"]
                == (promise["events"][0])
            )
            priya.portal_close_topic("price")
            priya.portal_set_status("happy")
            with pytest.raises(Conflict) as open_work:
                priya.portal_satisfied(rating=5, note="thanks")
            assert "call" in str(open_work.value) and "move" in str(open_work.value)
            priya.portal_satisfied(rating=5, note="thanks", reason="Tom may call; I am happy")
            tom.progress(case_id, "call", "done")
            tom.close_topic(case_id, "move")
            tom.satisfied(case_id)
            assert tom.case(case_id)["resolved"]
            priya.portal_reopen("the router still blinks")
            assert priya.portal_events(limit=1)[0]["type"] == "case.reopened"
            assert verify_bundle(priya.portal_bundle()).ok
        with pytest.raises(Invalid):
            tom.reopen(case_id, "")  # a reason is required
        tom.set_status(case_id, "waiting for Priya")
        note = tom.add_note(case_id, "She prefers mornings")
        assert [(n["id"], n["text"]) for n in tom.notes(case_id)] == [(note["id"], note["text"])]
        assert tom.events(case_id, limit=2)[0]["type"] == "status.set"
        assert tom.owner(case_id)["owner"]["owner"]["member"] == "tom"
        with pytest.raises(Invalid) as no_url:
            tom.invite(case_id)
        assert no_url.value.field == "url"
        live.node.set_url(live.url)
        assert tom.invite(case_id, hours=1)["link"].startswith(f"{live.url}/federation/v1/invites?")
        assert tom.bundle(case_id).startswith(b"{")
        assert tom.post_message(case_id, "See you Monday")["case"] == case_id
        assert tom.mark_read([n["id"] for n in tom.notifications(unread=True)])["marked"] >= 0
        assert tom.notifications(unread=True) == []
        assert tom.set_availability("away")["availability"] == "away"
        assert tom.member_profile("tom")["availability"] == "away"
        tom.set_availability("online")
        with pytest.raises(Forbidden):
            tom.add_team("Billing")

    with AccordClient(live.url, token=live.ada) as ada:
        team = ada.add_team("Billing", lead="ada")["id"]
        assert [t["name"] for t in ada.teams()] == ["Billing"] and team
        ada.set_member_profile("tom", team="Billing", skills=["fibre"], availability="online")
        rule = ada.add_rule(topic="price", team="Billing")["id"]
        assert [r["id"] for r in ada.rules()] == [rule]
        assert ada.remove_rule(rule) is None and ada.rules() == []
        assert ada.calendar() == {"always_open": True}
        ada.set_calendar("Europe/London", "mon-fri 09:00-17:30", country="GB")
        assert ada.calendar()["timezone"] == "Europe/London"
        routed = ada.open_case("Routed", route=True)
        assert routed["owner"]["owner"]["member"] == "tom"  # the only member online
        assigned = ada.assign(routed["case"], "ada", note="I'll take it")
        assert assigned["owner"]["member"] == "ada"
        handed = ada.handoff(routed["case"], "tom", "Back to you")
        assert handed["owner"]["member"] == "tom"
        with pytest.raises(Conflict):
            ada.route(routed["case"])  # it has an owner
        hook = ada.create_webhook("http://127.0.0.1:9/hook", ["case.opened"], allow_private=True)
        assert hook["secret"] and [h["id"] for h in ada.webhooks()["webhooks"]] == [hook["id"]]
        assert ada.change_webhook(hook["id"], active=False)["active"] is False
        assert ada.webhook(hook["id"])["id"] == hook["id"]
        assert ada.deliveries(hook["id"], limit=5)["deliveries"] == []
        assert ada.delete_webhook(hook["id"]) is None
        with pytest.raises(NotFound):
            ada.webhook(hook["id"])


def test_session_login_keeps_cookie_and_csrf(live: Desk) -> None:
    with AccordClient(live.url) as browser:
        with pytest.raises(Unauthorized):
            browser.login("tom", "wrong")
        login = browser.login("tom", PASSWORD)
        assert login["member"]["username"] == "tom" and browser.csrf == login["csrf"]
        assert browser.me()["via"] == "web"
        case_id = browser.open_case("Opened in a session")["case"]  # sends X-CSRF-Token
        assert browser.post_message(case_id, "hello")["case"] == case_id
        browser.logout()
        assert browser.csrf is None
        with pytest.raises(Unauthorized):
            browser.me()


def test_rate_limited_carries_retry_after(live: Desk) -> None:
    live.app.state.rate_limiter = RateLimiter(30, burst=2, clock=live.clock)
    with AccordClient(live.url, token=live.tom) as tom:
        tom.list_cases()
        tom.list_cases()
        with pytest.raises(RateLimited) as limited:
            tom.list_cases()
        assert limited.value.status == 429 and limited.value.retry_after == 2
        assert "rate limit" in limited.value.message
        live.clock.at += limited.value.retry_after
        assert tom.list_cases()["cases"] == []


def test_errors_from_any_answer() -> None:
    request = httpx.Request("GET", "http://x/api/v1/cases")
    proxy = error_from_response(
        httpx.Response(502, text="<html>Bad gateway</html>", request=request)
    )
    assert type(proxy) is AccordAPIError and proxy.status == 502
    assert "Bad gateway" in proxy.message
    teapot = error_from_response(httpx.Response(418, json={"detail": "short and stout"}))
    assert (teapot.error, teapot.message) == ("error", "short and stout")
    limited = error_from_response(
        httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "7"})
    )
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    assert str(limited) == "429 rate_limited: slow down"


def test_arguments_are_checked_before_sending() -> None:
    with AccordClient("http://unused.invalid") as client, pytest.raises(TypeError):
        client.accept("only the case")  # type: ignore[call-arg]
    propose = OPERATIONS["propose"]
    request = propose.request("sha256:ab", [price("1")], note=None)
    assert request.path == "/api/v1/cases/sha256:ab/proposals"
    assert request.json == {"changes": [price("1")]}  # None is not sent: the default applies
    listing = OPERATIONS["list_cases"].request(limit=5, resolved=False)
    assert listing.params == {"limit": 5, "resolved": False} and listing.json is None
    assert OPERATIONS["portal_accept"].request("p1").path == "/api/v1/portal/proposals/p1/accept"
