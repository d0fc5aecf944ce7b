"""Secrets: never in a log line (docs/security.md, issue 22 row 8)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from accord.node import Node
from tests.servers import free_port

PORTAL_TOKEN = "pT0kenAAAAbbbbCCCCddddEEEEffffGGGG"
VERIFY_TOKEN = "vt-s3cret-verify-token"


def _serve_and_log(data: Path) -> str:
    """Run ``accord serve`` on loopback, make the requests, return everything it logged."""
    port = free_port()
    env = {**os.environ, "ACCORD_HOME": str(data)}
    with subprocess.Popen(
        [sys.executable, "-m", "accord", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as server:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(400):
                    try:
                        client.get("/health", timeout=0.5)
                        break
                    except httpx.TransportError:
                        try:
                            server.wait(timeout=0.05)
                        except subprocess.TimeoutExpired:
                            continue
                        raise RuntimeError("accord serve exited") from None
                client.get(f"/portal/{PORTAL_TOKEN}")
                client.get(f"/portal/{PORTAL_TOKEN}/bundle")
                client.get(
                    "/hooks/7",
                    params={
                        "hub.mode": "subscribe",
                        "hub.verify_token": VERIFY_TOKEN,
                        "hub.challenge": "1158201444",
                    },
                )
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=20)
    return output.decode()


def test_portal_tokens_and_verify_tokens_never_reach_the_log(tmp_path: Path) -> None:
    data = tmp_path / "northwind"
    Node.init(data, name="Northwind Broadband").close()
    logged = _serve_and_log(data)
    assert "Uvicorn running" in logged or "/portal" in logged or "GET" in logged, logged
    assert PORTAL_TOKEN not in logged
    assert VERIFY_TOKEN not in logged


def test_the_log_filter_redacts_a_uvicorn_access_line() -> None:
    from accord.ops.logs import RedactSecrets

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            f"/hooks/7?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
            "1.1",
            200,
        ),
        None,
    )
    assert RedactSecrets().filter(record)
    shown = record.getMessage()
    assert VERIFY_TOKEN not in shown
    assert "hub.verify_token=[redacted]" in shown and "hub.challenge=1" in shown
    portal = logging.LogRecord(
        "accord", logging.INFO, __file__, 1, "%s", (f"/portal/{PORTAL_TOKEN}/x",), None
    )
    RedactSecrets().filter(portal)
    assert portal.getMessage() == "/portal/[redacted]/x"


# -- the data directory is the node user's alone (issue 22, row 6) -------------------------


def test_init_makes_the_data_private_and_open_warns_when_it_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import stat

    from accord.channels.blobs import node_blobs

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = tmp_path / "northwind"
    Node.init(data, name="Northwind Broadband").close()
    assert mode(data) == 0o700
    assert mode(data / "node.key") == 0o600
    assert mode(data / "accord.db") == 0o600
    blobs = node_blobs(data, durable=False)
    assert mode(blobs.path(blobs.put(b"an attachment"))) == 0o600
    with caplog.at_level(logging.WARNING, logger="accord.node"):
        Node.open(data).close()
    assert not any("readable by other" in r.getMessage() for r in caplog.records)
    # As a careless restore or `cp -r` leaves it: another local user could read it all.
    data.chmod(0o755)
    (data / "accord.db").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="accord.node"):
        Node.open(data).close()
    (warning,) = [r.getMessage() for r in caplog.records if "readable by other" in r.getMessage()]
    assert "accord.db (0644)" in warning and "chmod 700" in warning
