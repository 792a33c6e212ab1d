"""A throwaway ``redis-server`` on a free loopback port, for one test module or stack.

A server of its own means no other test can flush or read its keys. That matters: kombu's Redis
transport keeps a worker's unacknowledged tasks (``unacked``, ``unacked_index``) and its routing
table (``_kombu.binding.*``) as plain keys, and a test that flushed a database of the machine's
Redis while another test's task was in flight there lost that task for good.

Nothing is kept on disk (``--save ''``, no append-only file): a restarted server starts empty,
as a Redis without persistence does after a crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import redis

from support.processes import Process, wait_for
from support.services import free_port, require_command

HOST = "127.0.0.1"


class RedisServer:
    """A redis-server a test can stop and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.command = require_command("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.process: Process | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> RedisServer:
        self.starts += 1
        command = [self.command, "--port", str(self.port), "--bind", HOST]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        log = self.workdir / f"redis-{self.port}.log"
        self.process = Process(f"redis-{self.starts}", command, self.workdir, {}, log).start()
        wait_for(
            lambda: self.answers() or not self.process.running,
            20,
            lambda: f"redis-server did not start:\n{self.process.output()}",
        )
        assert self.process.running, f"redis-server exited:\n{self.process.output()}"
        return self

    def stop(self) -> None:
        """SIGTERM: with nothing to save, redis-server exits at once and closes its connections."""
        if self.process is not None:
            self.process.stop()
            self.process = None
        assert not self.answers(), f"Redis still answers on port {self.port}"


@contextlib.contextmanager
def throwaway_redis(workdir: Path) -> Iterator[str]:
    """Run a redis-server for the ``with`` block; yield its URL (database 0)."""
    server = RedisServer(workdir)
    try:
        yield server.start().url()
    finally:
        server.stop()
