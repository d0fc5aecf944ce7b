"""Fetching a platform's media through the one SSRF guard (issue 22, row 9 and its sequel).

A media URL comes from a webhook body or from the platform's API answer: with a valid
signature (or a compromised account) it could name loopback, the cloud metadata service or
another internal address, and the download would carry the account's token there. So every
media download of every connector goes through ``fetch_media``:

* the URL is checked by ``accord.integrations.ssrf.check_url`` (public unicast addresses
  only, every resolved address checked) and the connection goes to the address that was
  checked, never to the name again;
* only the hosts the platform serves media from (``hosts``: a name and its subdomains,
  over ``https``) or the account's own API origin are accepted; an API origin an admin
  set (a stand-in on the node's own network) may be private, nothing else may;
* the client never follows a redirect: a redirect is followed here, at most ``MAX_HOPS``
  times, each new URL checked again, and the credentials (``headers``) go only to the
  origins in ``credentials_for`` — never across a redirect to another origin;
* the body is read while streaming and the read stops past ``MAX_MEDIA`` (or at once when
  ``Content-Length`` declares more).

A refusal is a ``SendFailed`` whose message begins ``media URL refused:``; the caller
(``Connectors._receive``) logs it and files the message with a note in place of the file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import httpx

from accord.channels.connectors.base import SendFailed
from accord.integrations.ssrf import Resolver, UnsafeURL, check_url, parse_url

MAX_HOPS = 3
MAX_MEDIA = 25 * 1024 * 1024

Origin = tuple[str, str, int]


def origin(url: httpx.URL | str) -> Origin:
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return (parsed.scheme, parsed.host.lower(), port)


def media_host(host: str, hosts: Collection[str]) -> bool:
    """Is ``host`` one of ``hosts`` or a subdomain of one?"""
    name = host.lower().rstrip(".")
    return any(name == h or name.endswith("." + h) for h in hosts)


def https_origins(hosts: Collection[str]) -> frozenset[Origin]:
    return frozenset(("https", h, 443) for h in hosts)


def refused(why: str) -> SendFailed:
    return SendFailed(f"media URL refused: {why}", retry=False)


def fetch_media(
    client: httpx.Client,
    url: str,
    *,
    platform: str,
    hosts: Collection[str] = (),
    api: str | None = None,
    admin_api: bool = False,
    headers: Mapping[str, str] | None = None,
    credentials_for: Collection[Origin] = (),
    resolver: Resolver | None = None,
    limit: int = MAX_MEDIA,
) -> bytes:
    """The bytes at ``url`` (at most ``limit`` + 1 of them: the caller refuses more).

    ``hosts``: the names the platform serves media from (``https`` only); ``api``: the
    account's API base, whose origin is also accepted, and may be private when
    ``admin_api`` (an admin set it); ``headers`` (credentials) are sent only to the
    origins in ``credentials_for``."""
    api_origin = origin(api) if api else None
    current = url
    for _hop in range(MAX_HOPS + 1):
        try:
            parsed = parse_url(current)
        except UnsafeURL as exc:
            raise refused(str(exc)) from None
        here = origin(parsed)
        on_api = api_origin is not None and here == api_origin
        if not on_api and not (parsed.scheme == "https" and media_host(parsed.host, hosts)):
            allowed = sorted({*hosts, *([api_origin[1]] if api_origin else [])})
            raise refused(f"{parsed.host!r} is not a {platform} media host ({', '.join(allowed)})")
        try:
            target = check_url(current, allow_private=on_api and admin_api, resolver=resolver)
        except UnsafeURL as exc:
            raise refused(str(exc)) from None
        sent = {"Host": target.host_header}
        if headers and here in credentials_for:
            sent.update(headers)
        request = client.build_request(
            "GET",
            target.pinned_url(),
            headers=sent,
            extensions={"sni_hostname": target.host} if target.url.scheme == "https" else {},
        )
        response = client.send(request, follow_redirects=False, stream=True)
        try:
            if response.is_redirect:
                current = str(target.url.join(response.headers.get("location", "")))
                continue
            if response.status_code >= 400:
                code = response.status_code
                raise SendFailed(
                    f"{platform} refused the download ({code})",
                    retry=code == 429 or code >= 500,
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise SendFailed(
                    f"{platform} media of {declared} bytes is over the {limit}-byte limit",
                    retry=False,
                )
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    break  # enough to know it is over the limit
            return bytes(data)
        finally:
            response.close()
    raise refused(f"more than {MAX_HOPS} redirects")
