"""A TCP forwarder (to PostgreSQL in the tests) that can drop every connection and refuse new ones for
a while: a database outage the crawl, scrapyd's crawls and the API all see, without touching the
shared PostgreSQL server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from sqlalchemy.engine import make_url


class FlakyTcpProxy:
    """A TCP forwarder to PostgreSQL that can drop every connection and refuse new ones for a while."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.cuts = 0
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def to(cls, db_url: str) -> tuple[FlakyTcpProxy, str]:
        """A proxy in front of `db_url`'s server, and the URL that goes through it."""
        url = make_url(db_url)
        proxy = cls((url.host or "127.0.0.1", url.port or 5432))
        return proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self.lock:
            self.sockets.discard(src)

    def outage(self, seconds: float) -> None:
        """Cut every open connection now and refuse new ones for `seconds`."""
        self.down_until = time.monotonic() + seconds
        self.cuts += 1
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        """End the outage now."""
        self.down_until = 0.0

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def close(self) -> None:
        self.listener.close()
