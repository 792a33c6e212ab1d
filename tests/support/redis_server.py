"""A throwaway ``redis-server`` on a free port that a test stops and starts again.

Nothing is kept on disk (``--save ''``, no append-only file): a restarted server starts empty,
as a Redis without persistence does after a crash.
"""

from __future__ import annotations

from pathlib import Path

import redis

from support.processes import Process, wait_for
from support.services import free_port

HOST = "127.0.0.1"


class RedisServer:
    def __init__(self, command: str, workdir: Path) -> None:
        self.command, self.workdir = command, workdir
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
        cmd = [self.command, "--port", str(self.port), "--bind", HOST]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        log = self.workdir / "redis.log"
        self.process = Process(f"redis-{self.starts}", cmd, self.workdir, {}, log).start()
        wait_for(self.answers, 20, lambda: f"redis-server did not start:\n{self.process.output()}")
        return self

    def stop(self) -> None:
        """SIGTERM: with nothing to save, redis-server exits at once and closes its connections."""
        if self.process is not None:
            self.process.stop()
            self.process = None
        assert not self.answers(), f"Redis still answers on port {self.port}"
