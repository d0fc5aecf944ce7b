"""``accord serve --workers 2``: settings from accord.toml under the command line and the
environment, several processes answering (each bound first, then built: /health says
``starting`` until its app is there), metrics from all of them, JSON logs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from accord.node import Node
from tests.servers import free_port

pytestmark = pytest.mark.slow


def test_workers_config_file_and_json_logs(tmp_path: Path) -> None:
    data = tmp_path / "node"
    Node.init(data, name="Northwind Broadband").close()
    port = free_port()
    (data / "accord.toml").write_text(
        f'[serve]\nport = {port}\nworkers = 2\nlog-format = "json"\nsync_interval = 0\n'
    )
    env = {**os.environ, "ACCORD_HOME": str(data), "ACCORD_LOG_LEVEL": "info"}
    env.pop("ACCORD_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "accord", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "accord serve did not answer within 60 s"
            time.sleep(0.2)
        # each process answers /health at once and builds its app after: wait until the
        # answers (spread over both by the shared socket) all come from a built app
        in_a_row = 0
        while in_a_row < 20:
            answer = httpx.get(f"{base}/health", headers={"Connection": "close"}, timeout=5)
            in_a_row = in_a_row + 1 if answer.json()["status"] == "ok" else 0
            assert time.monotonic() < deadline, "a process of accord serve did not start"
        ids = set()
        with httpx.Client(base_url=base) as client:
            for _ in range(40):
                response = client.get("/health", headers={"Connection": "close"})
                assert response.status_code == 200
                ids.add(response.headers["X-Request-ID"])
            metrics = client.get("/metrics").text  # loopback: no token needed
        assert len(ids) == 40
        served = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith('accord_http_requests_total{method="GET",route="/health"')
        )
        assert served >= 40  # counted across both processes
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    lines = [orjson.loads(line) for line in errors.splitlines() if line.startswith(b"{")]
    access = [line for line in lines if line.get("logger") == "accord.access"]
    assert access and all("request_id" in line for line in access)
    assert {line["route"] for line in access} >= {"/health", "/metrics"}
    assert ids <= {line["request_id"] for line in access}  # each response's id is logged
