"""Real Accord server processes on loopback, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_node(data: Path, *extra: str, port: int | None = None) -> Iterator[str]:
    """Run ``accord serve`` for the node in ``data``; yield its base URL once it answers."""
    port = port or free_port()
    env = {**os.environ, "ACCORD_HOME": str(data)}
    with subprocess.Popen(
        [sys.executable, "-m", "accord", "serve", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as server:
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base) as client:
                for _ in range(400):
                    try:
                        client.get("/health", timeout=0.5)
                        break
                    except httpx.TransportError:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            server.wait(timeout=0.05)  # returns at once if it died
                        if server.returncode is not None:
                            output = server.stdout.read() if server.stdout else b""
                            raise RuntimeError(f"accord serve exited: {output.decode()}") from None
                else:
                    raise RuntimeError("accord serve did not answer within 20 s")
            yield base
        finally:
            server.terminate()
            server.communicate(timeout=10)
