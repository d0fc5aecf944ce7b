"""A webhook receiver on loopback for tests: a real HTTP server in a thread that answers
each request by a script (fail, drop the connection, redirect, succeed) and records
every request it read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: str  # what the receiver did: "200", "500", "drop", "302 …"


class Receiver:
    """``script``: what to do with the first requests, in order ("500", "drop", or
    "redirect:<url>"); every request after them gets ``200``."""

    def __init__(self, script: list[str] | None = None, port: int = 0) -> None:
        self.script = list(script or [])
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    step = receiver.script.pop(0) if receiver.script else "200"
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, step)
                    )
                if step == "drop":  # read it, then hang up without an answer
                    self.close_connection = True
                    return
                if step.startswith("redirect:"):
                    self.send_response(302)
                    self.send_header("Location", step.removeprefix("redirect:"))
                else:
                    self.send_response(int(step))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/accord"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in the order they arrived."""
        with self._lock:
            return [r for r in self.requests if r.answer.startswith("2")]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def receiving(script: list[str] | None = None, port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(script, port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
