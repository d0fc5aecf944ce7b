"""Files a party shared in a case: downloaded only through the case that refers to them,
always as attachments (never rendered inline: they came from a party).

A file value names its bytes by SHA-256, and anyone who can add an item to a case can name
any hash. So naming a file is not enough to reach it: the bytes belong to the case whose
event first named them on this node (``owner_case``: the upload, or the first event that
arrived carrying the value), and a file is downloaded only through that case. Naming
another case's file in one's own case yields ``404``, logged; an unknown hash is ``404``
too (issue 22, row 5).

A file that came with a message (a mail's attachment, one unpacked from a ``winmail.dat``
or a forwarded message) is reached through the channel message stored on this very case:
its hash must be among the attachments of the ``message.posted`` event that this node wrote
for one of the case's stored inbound messages (issue 21). The original of such a message
(the raw mail: an attachment kept with it over the size limit, encrypted or signed mail) is
``files/<the hex of the message's event id>``, as ``message-<n>.eml``. Neither depends on
which case first named the bytes: the same PDF mailed to two cases opens in both.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi.responses import Response

from accord.channels.blobs import BlobStore
from accord.core.state import State
from accord.service.errors import NotFound
from accord.store.database import Database
from accord.store.tables import channel_messages, events

log = logging.getLogger("accord.web")
_owners: dict[tuple[str, str], str] = {}  # (database, sha) -> case: never changes once set
_owners_lock = threading.Lock()

_SHA = re.compile(r"^[0-9a-f]{64}$")
# Raster images served with their own type (still as attachments): an <img> shows them.
_IMAGES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def file_values(state: State) -> dict[str, dict[str, Any]]:
    """The file values a case refers to (shared information and agreed data), by hash."""
    items = [*state["info"].values(), *state["terms"]["data"].values()]
    return {i["value"]["sha256"]: i["value"] for i in items if i["value"].get("type") == "file"}


def owner_case(db: Database, sha: str) -> str | None:
    """The case whose event first named the file ``sha`` on this node (events are only
    ever appended, so the answer never changes once there is one)."""
    key = (db.url, sha)
    with _owners_lock:
        if key in _owners:
            return _owners[key]
    pattern = f'%"sha256":"{sha}"%'
    names = (  # SQLite's LIKE never matches a BLOB; PostgreSQL has bytea LIKE bytea
        sa.cast(events.c.raw, sa.Text).like(pattern)
        if db.url.startswith("sqlite")
        else events.c.raw.op("LIKE", is_comparison=True)(pattern.encode())
    )
    with db.read() as conn:
        found = conn.execute(
            sa.select(events.c.case_id).where(names).order_by(events.c.pos).limit(1)
        ).scalar()
    if found is not None:
        with _owners_lock:
            if len(_owners) > 10_000:
                _owners.clear()
            _owners[key] = str(found)
    return str(found) if found is not None else None


def message_file(db: Database, case_id: str, sha: str) -> dict[str, Any] | None:
    """The file ``sha`` as one of the case's own stored inbound messages brought it (an
    attachment of the event this node wrote for it), or that message's original when
    ``sha`` is the hex of its event id; ``None`` otherwise."""
    m = channel_messages.c
    with db.read() as conn:
        original = conn.execute(
            sa.select(m.id, m.raw_sha256).where(
                m.case_id == case_id,
                m.direction == "in",
                m.status == "stored",
                m.event_id == f"sha256:{sha}",
            )
        ).first()
        if original is not None and original.raw_sha256:
            return {
                "type": "file",
                "sha256": original.raw_sha256,
                "name": f"message-{original.id}.eml",
                "media_type": "message/rfc822",
            }
        pattern = f'%"sha256":"{sha}"%'
        names = (
            sa.cast(events.c.raw, sa.Text).like(pattern)
            if db.url.startswith("sqlite")
            else events.c.raw.op("LIKE", is_comparison=True)(pattern.encode())
        )
        found = conn.execute(
            sa.select(events.c.raw)
            .join(channel_messages, m.event_id == events.c.event_id)
            .where(
                events.c.case_id == case_id,
                events.c.type == "message.posted",
                names,
                m.case_id == case_id,
                m.direction == "in",
                m.status == "stored",
            )
            .limit(20)
        ).all()
    for (raw,) in found:
        body = orjson.loads(raw).get("body", {})
        for value in body.get("attachments", []):
            if isinstance(value, dict) and value.get("sha256") == sha:
                return dict(value)
    return None


def download(blobs: BlobStore, state: State, sha: str, *, case_id: str, db: Database) -> Response:
    if not _SHA.fullmatch(sha):
        raise NotFound("no such file in this case")
    value = file_values(state).get(sha)
    if value is not None:
        owner = owner_case(db, sha)
        if owner != case_id:
            value = message_file(db, case_id, sha)
            if value is None:
                log.warning(
                    "file download refused: case %s names file %s, whose bytes belong to %s",
                    case_id,
                    sha[:16],
                    "another case" if owner else "no case",
                )
                raise NotFound("no such file in this case")
    else:
        value = message_file(db, case_id, sha)
    if value is None:
        raise NotFound("no such file in this case")
    try:
        data = blobs.get(value["sha256"])
    except (FileNotFoundError, ValueError):
        raise NotFound("this file is no longer stored on this node") from None
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", value["name"])[:120] or "file"
    media_type = str(value.get("media_type", ""))
    magic = _IMAGES.get(media_type)
    shown = media_type if magic and data.startswith(magic) else "application/octet-stream"
    response = Response(data, media_type=shown)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
