"""Many lean Socket.IO clients in one process, for fan-out measurements and tests.

Each client is a WebSocket spoken directly over an asyncio connection: the upgrade request, the
frames (RFC 6455; permessage-deflate, RFC 7692, when asked for, as browsers ask) and the few
Engine.IO 4 / Socket.IO 5 packets a listener needs: open, connect with ``auth``, ping/pong and
events. A full client library costs far more a message (python-socketio's: a thread or more a
connection; ``websockets``: ~150 us of CPU a message here, which made the clients the slowest
part of a fan-out on two cores). Here a message costs a frame header, a decompression and a
``json.loads``, and every frame a read brings in is stamped with the time of that read.

Run as a script (``python socketio_clients.py``), driven over stdin/stdout, one JSON object a
line:

- stdin, first line: ``{"targets": [{"url": "http://127.0.0.1:PORT", "clients": N,
  "auth": {...} or null, "source": "127.0.0.1"}], "event": "fanout", "deflate": true,
  "concurrency": 50}``
- stdout: ``{"connected": N, "refused": [...]}`` once every client tried to connect;
- stdin ``report``: stdout ``{"received": {label: [latency ms, ...]}, "cpu_s": ...}``, where
  ``label`` and ``sent`` come from each event's payload (``{"label": ..., "sent":
  time.monotonic()}``) and a latency is the receipt's ``time.monotonic()`` minus ``sent``
  (CLOCK_MONOTONIC: one clock for every process of the machine);
- stdin ``quit`` or end of input: the clients close and the process exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import sys
import time
import zlib
from collections import defaultdict
from urllib.parse import urlsplit

OPEN, PING, PONG, MESSAGE = "0", "2", "3", "4"
CONNECT, EVENT, CONNECT_ERROR = "0", "2", "4"
TEXT, CLOSE, WS_PING, WS_PONG = 0x1, 0x8, 0x9, 0xA
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def frame(opcode: int, payload: bytes) -> bytes:
    """A client's frame: final, masked (RFC 6455 5.3), never compressed."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


class Client(asyncio.Protocol):
    """One Socket.IO connection over WebSocket; ``on_event(name, args, received_at)``."""

    def __init__(self, host: str, path: str, auth: dict | None, deflate: bool, on_event):
        self.host, self.path, self.auth, self.deflate = host, path, auth, deflate
        self.on_event = on_event
        self.buffer = b""
        self.upgraded = False
        self.inflate = None
        self.fragments: list[bytes] = []
        self.compressed = False
        self.connected = asyncio.get_running_loop().create_future()  # None, or why refused
        self.transport: asyncio.Transport | None = None

    # asyncio

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()  # every frame of this read arrived by now
        self.buffer += data
        if not self.upgraded:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            status, *headers = head.decode("latin-1").split("\r\n")
            if " 101 " not in status + " ":
                return self.refuse(status)
            self.upgraded, self.buffer = True, rest
            if any(
                h.lower().startswith("sec-websocket-extensions: permessage-deflate")
                for h in headers
            ):
                self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        while (message := self.next_frame()) is not None:
            opcode, payload = message
            if opcode == TEXT:
                self.packet(payload.decode(), now)
            elif opcode == WS_PING:
                self.transport.write(frame(WS_PONG, payload))
            elif opcode == CLOSE:
                self.transport.close()

    def connection_lost(self, exc) -> None:
        self.refuse(f"connection lost: {exc}")

    # WebSocket

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next whole message in the buffer (control frames between fragments included)."""
        while True:
            buffer = self.buffer
            if len(buffer) < 2:
                return None
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return None
                (length,), offset = struct.unpack_from("!H", buffer, 2), 4
            elif length == 127:
                if len(buffer) < 10:
                    return None
                (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
            if len(buffer) < offset + length:
                return None
            payload = buffer[offset : offset + length]
            self.buffer = buffer[offset + length :]
            opcode = first & 0x0F
            if opcode >= 0x8:  # control frames are never fragmented nor compressed
                return opcode, payload
            if opcode:  # the first frame of a message
                self.compressed, self.message_opcode = bool(first & 0x40), opcode
            self.fragments.append(payload)
            if first & 0x80:  # the final frame
                payload, self.fragments = b"".join(self.fragments), []
                if self.compressed:
                    payload = self.inflate.decompress(payload + DEFLATE_TAIL)
                return self.message_opcode, payload

    def send(self, text: str) -> None:
        self.transport.write(frame(TEXT, text.encode()))

    # Engine.IO and Socket.IO

    def packet(self, text: str, received_at: float) -> None:
        if text == PING:
            self.send(PONG)
        elif text.startswith(OPEN):
            self.send(MESSAGE + CONNECT + (json.dumps(self.auth) if self.auth else ""))
        elif text.startswith(MESSAGE + EVENT):
            name, *args = json.loads(text[2:])
            self.on_event(name, args, received_at)
        elif text.startswith(MESSAGE + CONNECT):
            if not self.connected.done():
                self.connected.set_result(None)
        elif text.startswith(MESSAGE + CONNECT_ERROR):
            self.refuse(text[2:200])

    def refuse(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_result(reason)
        if self.transport is not None:
            self.transport.close()


class Clients:
    def __init__(self, event: str, deflate: bool) -> None:
        self.event, self.deflate = event, deflate
        self.received: dict[str, list[float]] = defaultdict(list)
        self.open: list[Client] = []

    def on_event(self, name: str, args: list, received_at: float) -> None:
        if name == self.event:
            self.received[args[0]["label"]].append((received_at - args[0]["sent"]) * 1000)

    async def connect(self, url: str, auth: dict | None, source: str) -> str | None:
        """Open one client; None once connected, else why it was refused."""
        address = urlsplit(url)
        path = "/socket.io/?EIO=4&transport=websocket"
        loop = asyncio.get_running_loop()
        client = Client(address.netloc, path, auth, self.deflate, self.on_event)
        try:
            await loop.create_connection(
                lambda: client, address.hostname, address.port, local_addr=(source, 0)
            )
            refused = await asyncio.wait_for(client.connected, 30)
        except (OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if refused is None:
            self.open.append(client)
        return refused


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    clients = Clients(spec.get("event", "fanout"), spec.get("deflate", True))
    gate = asyncio.Semaphore(spec.get("concurrency", 50))

    async def one(target: dict) -> str | None:
        async with gate:
            return await clients.connect(
                target["url"], target.get("auth"), target.get("source", "127.0.0.1")
            )

    attempts = [one(t) for t in spec["targets"] for _ in range(t["clients"])]
    outcomes = await asyncio.gather(*attempts)
    refused = [o for o in outcomes if o is not None]
    say({"connected": len(outcomes) - len(refused), "refused": refused[:20]})
    cpu_start = time.process_time()
    while line := (await reader.readline()).decode().strip():
        if line == "report":
            say({"received": clients.received, "cpu_s": time.process_time() - cpu_start})
        elif line == "quit":
            break
    for client in clients.open:
        client.transport.close()


def say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    try:  # libuv's loop: a third less CPU a message than asyncio's, when installed
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
