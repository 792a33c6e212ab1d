"""A TCP proxy on a free loopback port, to cut a server off from an app without touching it.

The app is pointed at the proxy, and the test decides what the network does:

- ``forward()``: connections reach the server (the start);
- ``refuse()``: the port refuses connections and the open ones are cut, as when the server is
  stopped or its host is gone;
- ``swallow()``: connections are accepted and never answered (open ones are cut), as when a
  firewall or a lost route drops the packets: only the client's own timeouts end the wait;
- ``stall()``: open connections stay open and carry nothing until ``resume()``, as when a
  network stops delivering in the middle of a stream.

Used for the machine's PostgreSQL, which other tests use at the same time and must not stop.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from support.services import free_port

HOST = "127.0.0.1"


def close(sock: socket.socket) -> None:
    """Close ``sock`` at once; a thread blocked reading it wakes up."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "refuse"
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def forward(self) -> None:
        self._set_mode("forward")

    def swallow(self) -> None:
        self._set_mode("swallow")

    def refuse(self) -> None:
        self._set_mode("refuse")

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _set_mode(self, mode: str) -> None:
        self._cut()
        self.mode = mode
        if mode == "refuse":
            if self._listener is not None:
                close(self._listener)
                self._listener = None
        elif self._listener is None:
            # The same port again: the app's settings name it. create_server sets SO_REUSEADDR.
            self._listener = socket.create_server((HOST, self.port))
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _cut(self) -> None:
        """Close every open connection, on both sides."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            close(sock)

    def _keep(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.update(sockets)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by refuse()
                return
            if self.mode == "swallow":
                self._keep(client)  # held open, never read from
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                close(client)
                continue
            server.settimeout(None)
            self._keep(client, server)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        # One side ended: end the other, as a real connection would.
        close(sink)
        close(source)
        with self._lock:
            self._sockets.difference_update((source, sink))

    def stop(self) -> None:
        self.resume()
        self.refuse()
