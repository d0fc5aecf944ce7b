"""Files a party shared in a case: downloaded only through the case that refers to them,
always as attachments (never rendered inline: they came from a party)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import Response

from accord.channels.blobs import BlobStore
from accord.service.errors import NotFound

_SHA = re.compile(r"^[0-9a-f]{64}$")


def file_values(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The file values a case refers to (shared information and agreed data), by hash."""
    items = [*state["info"].values(), *state["terms"]["data"].values()]
    return {i["value"]["sha256"]: i["value"] for i in items if i["value"].get("type") == "file"}


def download(blobs: BlobStore, state: dict[str, Any], sha: str) -> Response:
    value = file_values(state).get(sha) if _SHA.fullmatch(sha) else None
    if value is None:
        raise NotFound("no such file in this case")
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", value["name"])[:120] or "file"
    response = Response(blobs.get(sha), media_type="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
