"""Files a party shared in a case: downloaded only through the case that refers to them,
always as attachments (never rendered inline: they came from a party).

A file value names its bytes by SHA-256, and anyone who can add an item to a case can name
any hash. So naming a file is not enough to reach it: the bytes belong to the case whose
event first named them on this node (``owner_case``: the upload, or the first event that
arrived carrying the value), and a file is downloaded only through that case. Naming
another case's file in one's own case yields ``404``, logged; an unknown hash is ``404``
too (issue 22, row 5).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import sqlalchemy as sa
from fastapi.responses import Response

from accord.channels.blobs import BlobStore
from accord.service.errors import NotFound
from accord.store.database import Database
from accord.store.tables import events

log = logging.getLogger("accord.web")
_owners: dict[tuple[str, str], str] = {}  # (database, sha) -> case: never changes once set
_owners_lock = threading.Lock()

_SHA = re.compile(r"^[0-9a-f]{64}$")


def file_values(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
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


def download(
    blobs: BlobStore, state: dict[str, Any], sha: str, *, case_id: str, db: Database
) -> Response:
    value = file_values(state).get(sha) if _SHA.fullmatch(sha) else None
    if value is None:
        raise NotFound("no such file in this case")
    owner = owner_case(db, sha)
    if owner != case_id:
        log.warning(
            "file download refused: case %s names file %s, whose bytes belong to %s",
            case_id,
            sha[:16],
            "another case" if owner else "no case",
        )
        raise NotFound("no such file in this case")
    try:
        data = blobs.get(sha)
    except (FileNotFoundError, ValueError):
        raise NotFound("this file is no longer stored on this node") from None
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", value["name"])[:120] or "file"
    response = Response(data, media_type="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
