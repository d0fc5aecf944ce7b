"""A customer's data on request (GDPR article 15) and its erasure (article 17).

**Export**: one ZIP of everything this node holds about the customer — the record with
every identity and merged record and the history of changes to it; for each of their
cases the conversation, agreements and activities, the internal notes, and the signed
case log as a bundle that ``accord verify`` checks; every message they sent or were sent
on a channel, raw mail as ``.eml``; their attachments. ``README.txt`` says what is what.

**Erasure** removes the customer's node-private personal data: name, identities, the
channel messages' addresses, subjects and bodies, the raw mail and attachment files, the
internal notes on their cases, the identity values in the change history. It keeps, and
says so, what this node cannot take back: the shared case log, signed by the parties and
held by each of them — what the parties agreed to share. Each erasure is recorded (when,
by whom, how much of what) without personal data; erasing again changes nothing.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from accord.channels.blobs import BlobStore
from accord.core.bundle import write_bundle
from accord.customers.records import CustomerRecords
from accord.node import Node
from accord.store.search import Search
from accord.store.tables import (
    channel_messages,
    customer_changes,
    customer_identities,
    customers,
    erasures,
    import_keys,
    notes,
)

log = logging.getLogger("accord.privacy")
Clock = Callable[[], datetime]
SHARED_NOTE = (
    "This case's log is shared: every party of the case keeps its own signed copy of it. "
    "Erasing your data at {node} removes what {node} alone holds about you; the parties' "
    "copies of what was agreed to share stay with them."
)


class Privacy:
    def __init__(self, node: Node, blobs: BlobStore, *, now: Clock | None = None) -> None:
        self.node = node
        self.db = node.db
        self.blobs = blobs
        self.now = now or (lambda: datetime.now(UTC))
        self.records = CustomerRecords(node.cases, now=self.now)

    # -- export ----------------------------------------------------------------------

    def export(self, customer_id: int) -> bytes:
        """The ZIP of everything about the customer (and records merged into it)."""
        view = self.records.view(customer_id)
        family = [view["id"], *view["merged"]]
        erased = self.erasure(view["id"])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
            customer = {
                **view,
                "changes": [c.to_json() for c in self.records.history(view["id"])],
                "erased": erased,
            }
            out.writestr("customer.json", _json(customer))
            files: dict[str, str] = {}
            for case in view["cases"]:
                case_id = case["case"]
                state = self.node.cases.state(case_id)
                if state is None:
                    continue
                events = self.node.cases.events(case_id)
                messages = []
                for e in sorted(events, key=lambda e: e.key):
                    if e.type != "message.posted":
                        continue
                    for a in e.body.get("attachments", []):
                        files[a["sha256"]] = a["name"]
                    messages.append(
                        {
                            "time": e.time,
                            "from": "you" if e.author.for_party else e.author.member,
                            "via": e.author.via,
                            "text": e.body.get("text", ""),
                            "attachments": [a["name"] for a in e.body.get("attachments", [])],
                        }
                    )
                with self.db.read() as conn:
                    internal = conn.execute(
                        sa.select(notes.c.member, notes.c.text, notes.c.created_at)
                        .where(notes.c.case_id == case_id)
                        .order_by(notes.c.id)
                    ).all()
                out.writestr(
                    f"cases/{_safe(case_id)}.json",
                    _json(
                        {
                            "case": case_id,
                            "title": state["title"],
                            "shared": SHARED_NOTE.format(node=self.node.name),
                            "parties": state["parties"],
                            "agreement": state.get("agreement"),
                            "activities": state.get("activities"),
                            "data": state.get("data"),
                            "status": state.get("status"),
                            "resolved": state["resolved"],
                            "messages": messages,
                            "internal_notes": [
                                {"by": m, "text": t, "at": _iso(at)} for m, t, at in internal
                            ],
                        }
                    ),
                )
                out.writestr(
                    f"cases/{_safe(case_id)}.bundle.jsonl",
                    write_bundle(case_id, events, state, exported_by=self.node.key.public),
                )
            with self.db.read() as conn:
                rows = conn.execute(
                    sa.select(channel_messages)
                    .where(channel_messages.c.customer_id.in_(family))
                    .order_by(channel_messages.c.id)
                ).all()
            for row in rows:
                meta = {
                    str(k): v
                    for k, v in row._mapping.items()
                    if k not in ("body", "dedupe_key", "flags", "attempts")
                }
                out.writestr(f"messages/{row.id}.json", _json(meta))
                if row.raw_sha256:
                    raw = self._blob(row.raw_sha256)
                    if raw is not None:
                        out.writestr(f"messages/{row.id}.eml", raw)
            for sha, name in sorted(files.items()):
                data = self._blob(sha)
                if data is not None:
                    out.writestr(f"attachments/{sha[:12]}-{_safe(name)}", data)
            out.writestr("README.txt", self._readme(view, erased))
        return buffer.getvalue()

    def _readme(self, view: dict[str, Any], erased: dict[str, Any] | None) -> str:
        lines = [
            f"Your data held by {self.node.name}, exported {self.now().isoformat()}.",
            "",
            "customer.json     your record: name, how you reach us (identities), records",
            "                  merged into it, and every change members made to it",
            "cases/*.json      each of your cases: the conversation, what was agreed, what",
            "                  each side does, and our internal notes about it",
            "cases/*.bundle.jsonl  each case's signed log: `accord verify FILE` checks every",
            "                  signature without us",
            "messages/         every message on a channel (email, chat, WhatsApp, …) with",
            "                  its details; emails as received or sent (.eml)",
            "attachments/      the files of your messages",
            "",
            SHARED_NOTE.format(node=self.node.name),
        ]
        if erased:
            lines += [
                "",
                f"Your personal data here was erased on {erased['at']}: what remains is the "
                "shared case log, kept by every party of each case.",
            ]
        return "\n".join(lines) + "\n"

    def _blob(self, sha: str) -> bytes | None:
        try:
            return self.blobs.get(sha)
        except (FileNotFoundError, ValueError):
            return None

    # -- erasure ---------------------------------------------------------------------

    def erasure(self, customer_id: int) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(erasures).where(erasures.c.customer_id == customer_id)
            ).first()
        if row is None:
            return None
        return {
            "customer": row.customer_id,
            "at": _iso(row.at),
            "by": row.by,
            "removed": orjson.loads(row.removed),
        }

    def erase(self, customer_id: int, *, by: str) -> dict[str, Any]:
        """Erase the customer's node-private personal data; the record of it."""
        view = self.records.view(customer_id)
        root = view["id"]
        done = self.erasure(root)
        if done is not None:
            return done
        family = [root, *view["merged"]]
        case_ids = [c["case"] for c in view["cases"]]
        files = set()
        for case_id in case_ids:
            for e in self.node.cases.events(case_id):
                if e.type == "message.posted" and e.author.for_party:
                    files |= {a["sha256"] for a in e.body.get("attachments", [])}
        removed: dict[str, int] = {}
        with self.db.write() as conn:
            raws = {
                r
                for r in conn.execute(
                    sa.select(channel_messages.c.raw_sha256).where(
                        channel_messages.c.customer_id.in_(family),
                        channel_messages.c.raw_sha256.is_not(None),
                    )
                ).scalars()
            }
            shared = (
                set(
                    conn.execute(
                        sa.select(channel_messages.c.raw_sha256).where(
                            channel_messages.c.customer_id.not_in(family),
                            channel_messages.c.raw_sha256.in_(list(raws)),
                        )
                    ).scalars()
                )
                if raws
                else set()
            )
            removed["identities"] = conn.execute(
                customer_identities.delete().where(customer_identities.c.customer_id.in_(family))
            ).rowcount
            for member in family:
                conn.execute(
                    customers.update()
                    .where(customers.c.id == member)
                    .values(name=f"erased customer {member}")
                )
            removed["records"] = len(family)
            removed["messages"] = conn.execute(
                channel_messages.update()
                .where(channel_messages.c.customer_id.in_(family))
                .values(
                    sender="",
                    recipients="[]",
                    subject="",
                    body=None,
                    thread="[]",
                    raw_sha256=None,
                    error=None,
                    # the platform's ids carry the customer too: a Telegram chat id, a web
                    # chat visitor token, a WhatsApp id whose base64 holds the phone number;
                    # the dedupe key is a hash of them, and hashes of phone numbers invert
                    external_id=sa.literal("erased:") + sa.cast(channel_messages.c.id, sa.String),
                    dedupe_key=None,
                )
            ).rowcount
            # a reply still queued for them is cancelled, not retried into the void
            removed["replies_cancelled"] = conn.execute(
                channel_messages.update()
                .where(
                    channel_messages.c.customer_id.in_(family),
                    channel_messages.c.status == "queued",
                )
                .values(
                    status="cancelled",
                    error="cancelled: the customer's data was erased",
                    done_at=self.now(),
                )
            ).rowcount
            removed["notes"] = (
                conn.execute(notes.delete().where(notes.c.case_id.in_(case_ids))).rowcount
                if case_ids
                else 0
            )
            Search(self.node.db).forget_notes(conn, case_ids)  # nor findable by search
            conn.execute(
                customer_changes.update()
                .where(
                    sa.or_(
                        customer_changes.c.customer_id.in_(family),
                        customer_changes.c.other_id.in_(family),
                    )
                )
                .values(detail=orjson.dumps({"erased": True}).decode())
            )
            removed["import_keys"] = conn.execute(
                import_keys.delete().where(
                    import_keys.c.kind == "customer",
                    import_keys.c.local_id.in_([str(f) for f in family]),
                )
            ).rowcount
            at = self.now()
            conn.execute(
                erasures.insert(),
                {
                    "customer_id": root,
                    "at": at,
                    "by": by,
                    "removed": orjson.dumps(
                        removed
                        | {"files": len((raws - shared) | files), "cases_kept": len(case_ids)}
                    ).decode(),
                },
            )
        deleted = 0
        for sha in (raws - shared) | files:
            deleted += self.blobs.delete(sha)
        log.info("customer %d erased by %s: %s", root, by, removed)
        found = self.erasure(root)
        assert found is not None
        return found

    def erasures(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            ids = list(
                conn.execute(sa.select(erasures.c.customer_id).order_by(erasures.c.id)).scalars()
            )
        return [e for e in (self.erasure(int(i)) for i in ids) if e is not None]


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return cleaned.strip("._")[:120] or "file"
