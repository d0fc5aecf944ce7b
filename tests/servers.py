"""Real Accord server processes on loopback, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_node(data: Path, *extra: str, port: int | None = None) -> Iterator[str]:
    """Run ``accord serve`` for the node in ``data``; yield its base URL once it is ready."""
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
                # the port answers at once (/health); /ready once everything has started
                for _ in range(400):
                    try:
                        if client.get("/ready", timeout=0.5).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        server.wait(timeout=0.05)  # returns at once if it died
                    if server.returncode is not None:
                        output = server.stdout.read() if server.stdout else b""
                        raise RuntimeError(f"accord serve exited: {output.decode()}") from None
                else:
                    raise RuntimeError("accord serve was not ready within 20 s")
            yield base
        finally:
            server.terminate()
            server.communicate(timeout=10)


class SilentServer:
    """A TCP server on loopback (port 0) that accepts every connection and never says a
    word — an SMTP relay or a webhook receiver that hangs. ``connected`` is set at the
    first connection; ``hang_up()`` closes every connection it holds."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.connected = threading.Event()
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silent-server", daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self.accepted += 1
        self.connected.set()

    def hang_up(self) -> None:
        def close_all() -> None:
            for writer in self._writers:
                writer.close()
            self._writers.clear()

        self.loop.call_soon_threadsafe(close_all)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the silent server did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self.hang_up()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
