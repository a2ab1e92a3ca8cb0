"""
A loopback HTTP server that answers every request with bytes a test scripts: for answers no honest server gives.

Framing faults (a body cut short with no length, a stall between bytes, a gzip-encoded body) live below what the
emulator's fault injection can express, so a test writes the raw response itself.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Script = Callable[[socket.socket], None]


def response_head(status: str = "200 OK", **headers: str) -> bytes:
    """A status line and headers (``Content_Type`` -> ``Content-Type``), ending with the blank line."""
    lines = [f"HTTP/1.1 {status}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send(data: bytes) -> Script:
    """Send ``data`` and close the connection (a body without a length ends here)."""
    return lambda conn: conn.sendall(data)


def drip(head: bytes, every_s: float, byte: bytes = b"\0") -> Script:
    """Send ``head``, then one byte every ``every_s`` seconds until the client goes away."""

    def script(conn: socket.socket) -> None:
        conn.sendall(head)
        while True:
            time.sleep(every_s)
            try:
                conn.sendall(byte)
            except OSError:
                return

    return script


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                return
            received += chunk
        self.server.requests.append(received.split(b"\r\n", 1)[0].decode("latin-1"))
        self.server.script(conn)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def scripted_server(script: Script) -> Iterator[_Server]:
    server = _Server(script)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
