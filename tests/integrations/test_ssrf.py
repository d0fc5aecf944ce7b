"""Webhook URLs may not reach into the node's own network: refused at subscription, at
every delivery (DNS can change), and through redirects — unless an admin allows it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import httpx
import pytest

from accord.integrations import ssrf
from accord.integrations.ssrf import UnsafeURL, check_url

from .conftest import Hub
from .receiver import receiving

PUBLIC = "93.184.216.34"


def resolving(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    """A resolver answering from ``table``; any other name does not resolve."""

    def resolve(host: str, _port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


TRICKS = {
    "localtest.me": ["127.0.0.1"],  # public names that point home
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "intranet.example.com": ["10.0.0.1"],
    "mixed.example.com": [PUBLIC, "192.168.1.10"],  # one bad answer is enough
    "cgnat.example.com": ["100.64.0.1"],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946", "::1"],
    "mapped.example.com": ["::ffff:169.254.169.254"],
    "hooks.example.com": [PUBLIC],
}


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/",
        "http://127.0.0.1:8080/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 around 169.254.169.254
        "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://192.0.2.10/",  # documentation space: not global
        "http://localhost/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://printer.local/",
        "http://metadata.google.internal/",
        "http://metadata/",
        "http://localtest.me/",
        "http://127.0.0.1.nip.io/",
        "http://metadata.example.com/",
        "http://intranet.example.com/",
        "http://mixed.example.com/",
        "http://cgnat.example.com/",
        "http://v6.example.com/",
        "http://mapped.example.com/",
        "https://unknown.example.com/",  # does not resolve
    ],
)
def test_private_and_local_targets_are_refused(url: str) -> None:
    resolver = resolving({**TRICKS, "127.1": ["127.0.0.1"]})
    with pytest.raises(UnsafeURL):
        check_url(url, resolver=resolver)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        "https://user:secret@hooks.example.com/",
        "https://hooks.example.com@10.0.0.1/",
        "https://hooks.example.com/#frag",
        "https:///nohost",
        "not a url",
        "",
        "https://hooks.example.com/" + "a" * 2100,
    ],
)
def test_only_plain_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=True, resolver=resolving(TRICKS))


def test_a_public_url_is_pinned_to_the_address_that_was_checked() -> None:
    target = check_url("https://Hooks.Example.com:8443/in?x=1", resolver=resolving(TRICKS))
    assert target.host == "hooks.example.com" and target.port == 8443
    assert [str(a) for a in target.addresses] == [PUBLIC]
    assert str(target.pinned_url()) == f"https://{PUBLIC}:8443/in?x=1"
    assert target.host_header == "hooks.example.com:8443"


def test_allow_private_lets_loopback_through_but_not_userinfo() -> None:
    assert str(check_url("http://127.0.0.1:9/", allow_private=True).address) == "127.0.0.1"
    assert check_url("http://localhost:9/", allow_private=True).addresses
    with pytest.raises(UnsafeURL):
        check_url("http://admin:pw@127.0.0.1:9/", allow_private=True)


def test_the_system_resolver_returns_every_address() -> None:
    found = ssrf.system_resolver("localhost", 80)
    assert found and all(ssrf.refused(ipaddress.ip_address(a)) for a in found)


# -- through the API and the worker ----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://localhost/hook",
        "http://localtest.me/hook",  # DNS tricks: a public name for 127.0.0.1
    ],
)
def test_subscribing_a_private_url_is_refused_by_default(hub: Hub, url: str) -> None:
    hub.webhooks.resolver = resolving(TRICKS)
    response = hub.client.post(
        "/api/v1/webhooks", headers=hub.as_("admin"), json={"url": url, "events": ["case.opened"]}
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "url"
    assert "public" in response.json()["message"]


def test_a_name_that_turns_private_after_subscribing_is_refused_at_delivery(hub: Hub) -> None:
    with receiving() as receiver:
        answers = [[PUBLIC], ["127.0.0.1"]]  # public for the check, then rebound home
        asked: list[str] = []

        def rebinding(host: str, _port: int) -> list[str]:
            asked.append(host)
            return answers[0] if len(asked) == 1 else answers[1]

        hub.webhooks.resolver = rebinding
        url = f"http://rebind.example.com:{receiver.port}/hooks/accord"
        created = hub.subscribe(url, events=["case.opened"])
        hub.open_case()
        hub.run_due()
        assert receiver.requests == []  # it never reached the receiver on loopback
    [delivery] = hub.deliveries(created["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    [attempt] = delivery["log"]
    assert attempt["status_code"] is None
    assert "refused" in attempt["error"] and "127.0.0.1" in attempt["error"]
    assert asked == ["rebind.example.com", "rebind.example.com"]  # checked again to send


def test_a_redirect_to_a_private_address_is_never_followed(hub: Hub) -> None:
    seen: list[httpx.Request] = []

    def public_receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    hub.webhooks.resolver = resolving(TRICKS)
    hub.webhooks.transport = httpx.MockTransport(public_receiver)
    created = hub.subscribe("https://hooks.example.com/in", events=["case.opened"])
    hub.open_case()
    hub.run_due()
    # one request, to the address that was checked, under the name it was given
    [request] = seen
    assert request.url.host == PUBLIC and request.headers["Host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    [delivery] = hub.deliveries(created["id"])
    [attempt] = delivery["log"]
    assert attempt["status_code"] == 302
    assert attempt["error"].startswith("redirect refused: HTTP 302 to http://169.254.169.254/")
    assert delivery["status"] == "pending"  # a failed attempt, retried later


def test_even_an_allowed_private_receiver_cannot_redirect(hub: Hub) -> None:
    with receiving(["redirect:http://10.0.0.1/admin"] * 2) as receiver:
        created = hub.subscribe(receiver.url, events=["case.opened"], allow_private=True)
        hub.open_case()
        hub.run_due()
        assert len(receiver.requests) == 1
    [delivery] = hub.deliveries(created["id"])
    assert delivery["last_status_code"] == 302
    assert "redirect refused" in delivery["last_error"]
