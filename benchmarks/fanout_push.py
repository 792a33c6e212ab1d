"""Runs in a rendered project's virtualenv: the third process that pushes the fan-out's events
through the Redis message queue, the way each side really sends them.

    python fanout_push.py generated PACKAGE TOKEN
        The generated app's own push module: ``push_to_user()`` to the user the access token
        TOKEN belongs to, through its write-only end of the queue (``queue_writer``).
    python fanout_push.py bare REDIS_URL CHANNEL
        Bare python-socketio: a write-only ``RedisManager`` broadcasting to every client.

Then one label a line on stdin: each is sent as ``{"label": LABEL, "sent": time.monotonic()}``
in a ``fanout`` event, and answered with a line on stdout once handed to Redis.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Iterator

EVENT = "fanout"


@contextlib.contextmanager
def generated(package: str, token: str) -> Iterator[Callable[[dict], None]]:
    app = importlib.import_module(package).create_app()
    push = importlib.import_module(f"{package}.realtime.push")
    Token = importlib.import_module(f"{package}.api.models").Token
    with app.app_context():
        user_id = Token.by_access_token(token).user_id
        yield lambda data: push.push_to_user(user_id, EVENT, data)


@contextlib.contextmanager
def bare(url: str, channel: str) -> Iterator[Callable[[dict], None]]:
    import socketio

    queue = socketio.RedisManager(url, channel=channel, write_only=True)
    yield lambda data: queue.emit(EVENT, data, namespace="/")


if __name__ == "__main__":
    side, *args = sys.argv[1:]
    with {"generated": generated, "bare": bare}[side](*args) as send:
        for line in sys.stdin:
            send({"label": line.strip(), "sent": time.monotonic()})
            print("sent", flush=True)
