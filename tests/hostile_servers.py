"""Misbehaving HTTP servers on 127.0.0.1 for tests: real sockets, written by hand because the point is
to break the protocol's timing in ways a well-behaved framework never would.

`TricklingServer(body, interval_s)`: reads a request, then answers 200 with `body`, one byte every
`interval_s` seconds (headers included with `trickle_headers=True`). Each byte resets an inactivity
timeout, so only a total deadline bounds such a reply.
"""
from __future__ import annotations

import socket
import threading
import time


class TricklingServer:
    def __init__(self, body: bytes, interval_s: float = 0.25, trickle_headers: bool = False) -> None:
        self.body = body
        self.interval_s = interval_s
        self.trickle_headers = trickle_headers
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, name="trickling-server", daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(self.body)}\r\n\r\n").encode()
                if not self.trickle_headers:
                    conn.sendall(head)
                    head = b""
                for i in range(len(head + self.body)):
                    if self._stop.is_set():
                        return
                    conn.sendall((head + self.body)[i:i + 1])
                    time.sleep(self.interval_s)
            except OSError:
                return

    def __enter__(self) -> "TricklingServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
