"""Where an outbound webhook may connect: public addresses only, unless an admin allows more.

A webhook URL is checked when it is subscribed and again before every delivery, since
what a name resolves to can change (DNS rebinding). ``check_url`` parses the URL,
resolves its host to *every* address (``socket.getaddrinfo``, or an injected resolver
in tests) and refuses it if any address is not a public unicast address:

* loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0, ::), private (10/8, 172.16/12,
  192.168/16, fc00::/7), link-local (169.254.0.0/16 — the cloud metadata service at
  169.254.169.254 — and fe80::/10), shared address space / CGNAT (100.64.0.0/10),
  multicast, reserved, documentation and benchmarking ranges: anything Python's
  ``ipaddress`` does not call global;
* IPv6 addresses that carry an IPv4 address — IPv4-mapped (::ffff:a.b.c.d), 6to4
  (2002::/16) and NAT64 (64:ff9b::/96) — when the IPv4 address inside is refused;
* names that mean "this machine" or "this network" whatever DNS says: ``localhost`` and
  ``*.localhost``, ``*.local``, ``*.internal``, ``*.home.arpa``, ``*.localdomain``, and
  single-label names (``intranet``, ``metadata``), which resolve through search domains.

Only ``http`` and ``https`` are allowed, and never userinfo (``user:pass@host``): a
secret belongs in the signature, and ``https://good.example@10.0.0.1/`` is a classic
disguise. With ``allow_private`` (set by an admin, for receivers on the node's own
network, and in tests on loopback) only the address checks are skipped; the scheme and
userinfo rules stay.

The caller connects to an address from the returned ``Target`` — the one that was
checked — never to the name again, so a DNS answer that changes between the check and
the connection cannot send the request elsewhere (see ``accord.integrations.webhooks``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses as text``; raises ``OSError`` when the name does not resolve."""

MAX_URL = 2048
SCHEMES = ("http", "https")
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class UnsafeURL(ValueError):
    """The URL may not be called; the message says why, for the person who gave it."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to call it (``host``)."""

    url: httpx.URL
    host: str  # the name as the receiver knows it: Host header and TLS server name
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def address(self) -> IPAddress:
        return self.addresses[0]

    def pinned_url(self) -> httpx.URL:
        """The URL with its host replaced by the checked address."""
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        netloc: str = self.url.netloc.decode("ascii")
        return netloc


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), in the order the system gives."""
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone (fe80::1%eth0)
        if address not in found:
            found.append(address)
    return found


def parse_url(url: str) -> httpx.URL:
    """The URL if its form is acceptable: http(s), a host, no userinfo; else ``UnsafeURL``."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UnsafeURL(f"a webhook URL is 1 to {MAX_URL} characters")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise UnsafeURL("a webhook URL has no spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in SCHEMES:
        raise UnsafeURL("only http and https URLs can receive webhooks")
    if parsed.userinfo:
        raise UnsafeURL("a webhook URL may not carry a user name or password (user@host)")
    if not parsed.raw_host:
        raise UnsafeURL("a webhook URL needs a host")
    if parsed.fragment:
        raise UnsafeURL("a webhook URL has no #fragment")
    return parsed


def check_url(url: str, *, allow_private: bool = False, resolver: Resolver | None = None) -> Target:
    """Parse and resolve ``url``; refuse it (``UnsafeURL``) unless every address is allowed."""
    parsed = parse_url(url)
    host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is None and not allow_private:
        reason = local_name(host)
        if reason:
            raise UnsafeURL(f"{host!r} {reason}; webhooks go to public hosts")
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
    else:
        addresses = _resolve(host, port, resolver or system_resolver)
    if not allow_private:
        for address in addresses:
            reason = refused(address)
            if reason:
                shown = host if literal is not None else f"{host!r} resolves to {address}, which"
                raise UnsafeURL(f"{shown} is {reason}; webhooks go to public addresses")
    return Target(parsed, host, port, addresses)


def local_name(host: str) -> str | None:
    """Why ``host`` names this machine or a local network, or None."""
    if host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES):
        return "names this machine or a local network"
    if "." not in host:
        return "is a single-label name, resolved through local search domains"
    return None


def refused(address: IPAddress) -> str | None:
    """Why a webhook may not connect to ``address``, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = refused(inner)
            return f"an IPv6 form of {inner}, which is {why}" if why else None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (169.254.0.0/16 or fe80::/10, cloud metadata among them)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "in the shared address space 100.64.0.0/10 (carrier-grade NAT)"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _resolve(host: str, port: int, resolver: Resolver) -> tuple[IPAddress, ...]:
    try:
        answers = list(resolver(host, port))
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"{host!r} does not resolve: {exc}") from exc
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer.split("%", 1)[0])
        except ValueError as exc:
            raise UnsafeURL(f"{host!r} resolves to {answer!r}, not an IP address") from exc
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"{host!r} does not resolve to any address")
    return tuple(addresses)


__all__ = [
    "Resolver",
    "Target",
    "UnsafeURL",
    "check_url",
    "local_name",
    "parse_url",
    "refused",
    "system_resolver",
]
