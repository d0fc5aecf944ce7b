"""``accord remote``: cases on a running node, through its REST API with ``accord.client``.

Unlike the other commands, these do not open a data directory: they call a node's
``/api/v1`` with an API token, so they work from any machine that can reach it.
Uses ``accord.cli.common``; registered by ``accord.cli.root``.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from accord.cli import common
from accord.cli.common import fail, format_value

if TYPE_CHECKING:
    from accord.client import AccordClient

remote_app = typer.Typer(
    help="Cases on a running node, through its REST API (needs an API token).",
    no_args_is_help=True,
)

Url = Annotated[
    str,
    typer.Option(
        "--url", envvar="ACCORD_URL", help="The node's base URL, e.g. http://127.0.0.1:8640."
    ),
]
Token = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="ACCORD_TOKEN",
        help="An API token with cases:read (prefer $ACCORD_TOKEN: arguments are visible "
        "to other users of this machine).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
FULL_ID = re.compile(r"sha256:[0-9a-f]{64}")
PAGE = 500


def _client(url: str, token: str) -> AccordClient:
    from accord.client import AccordClient

    return AccordClient(url, token=token, timeout=30.0)


def _refused(exc: Exception, url: str) -> typer.Exit:
    from accord.client import AccordAPIError

    if isinstance(exc, AccordAPIError):
        return fail(f"{url} refused: {exc}")
    return fail(f"cannot reach {url}: {exc}")


def _json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


@remote_app.command("cases")
def remote_cases(
    url: Url,
    token: Token,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many cases.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
    as_json: AsJson = False,
) -> None:
    """List the node's cases, most recently changed first."""
    import httpx

    from accord.client import AccordAPIError

    try:
        with _client(url, token) as accord:
            page = accord.list_cases(limit=limit, offset=offset)
    except (AccordAPIError, httpx.HTTPError) as exc:
        raise _refused(exc, url) from exc
    if as_json:
        _json(page)
        return
    table = Table("case", "title", "events", "resolved", "updated")
    for row in page["cases"]:
        table.add_row(
            row["case"][:19],
            escape(row["title"]),
            str(row["events"]),
            "yes" if row["resolved"] else "no",
            row["updated"][:16].replace("T", " "),
        )
    common.out.print(table)


def _find(accord: AccordClient, ref: str) -> str:
    """A full case id from an id or an unambiguous prefix of one."""
    if FULL_ID.fullmatch(ref):
        return ref
    found: list[str] = []
    offset = 0
    while True:
        rows = accord.list_cases(limit=PAGE, offset=offset)["cases"]
        found += [r["case"] for r in rows if r["case"].startswith(ref)]
        if len(rows) < PAGE or len(found) > 1:
            break
        offset += PAGE
    if len(found) != 1:
        raise fail(
            f"{'several cases match' if found else 'no case matches'} {ref!r} "
            "(see `accord remote cases`)"
        )
    return found[0]


@remote_app.command("case")
def remote_case(
    case: Annotated[str, typer.Argument(help="Case id, or an unambiguous prefix of it.")],
    url: Url,
    token: Token,
    as_json: AsJson = False,
) -> None:
    """Show one case: parties, agreed terms, open proposals and activities."""
    import httpx

    from accord.client import AccordAPIError

    try:
        with _client(url, token) as accord:
            view = accord.case(_find(accord, case), limit=10)
    except (AccordAPIError, httpx.HTTPError) as exc:
        raise _refused(exc, url) from exc
    if as_json:
        _json(view)
        return
    _render(view)


def _render(v: dict[str, Any]) -> None:
    out = common.out
    out.print(f"[bold]{escape(v['title'])}[/bold]  {v['case']}")
    agreement = v["agreement"]
    status = "resolved" if v["resolved"] else "open"
    label = f" ({escape(v['status'])})" if v["status"] else ""
    out.print(f"{status}{label}; agreement v{agreement['version']}; {v['events']} events")
    parties = Table("party", "name", "kind", "satisfied", title="Parties")
    for pid, p in v["parties"].items():
        satisfied = "yes" if pid in v["satisfied"] else ""
        parties.add_row(escape(pid), escape(p["name"]), p["kind"], satisfied)
    out.print(parties)
    if agreement["data"]:
        data = Table("item", "value", title="Agreed")
        for key, item in agreement["data"].items():
            data.add_row(escape(key), escape(format_value(item["value"])))
        out.print(data)
    if v["open_proposals"]:
        props = Table("proposal", "by", "base", "changes", "accepted by", title="Open proposals")
        for pid, p in v["open_proposals"].items():
            props.add_row(
                pid[:19],
                escape(p["by"]),
                f"v{p['base']}",
                str(len(p["changes"])),
                escape(", ".join(sorted(p["accepted_by"]))),
            )
        out.print(props)
    activities = [a for items in v["activities"].values() for a in items]
    if activities:
        acts = Table("activity", "owner", "due", "state", title="Activities")
        for a in activities:
            acts.add_row(
                escape(f"{a.get('title') or ''} ({a['activity']})"),
                escape(a.get("owner") or ""),
                a.get("due") or "",
                a["state"],
            )
        out.print(acts)
