"""A throwaway Redis server for one test module: no other test can flush or read its keys.

Kombu's Redis transport keeps a worker's unacknowledged tasks in the keys ``unacked`` and
``unacked_index`` of the broker's database. A test that flushed a database number of the
machine's Redis while another test's task was in flight there (two xdist workers, or two test
runs) wiped that task for good: it was never handed out again. A server of its own, on a port
of its own, keeps nothing on disk and disappears with the test.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.processes import Process, wait_for
from support.services import free_port, require_command


@contextlib.contextmanager
def throwaway_redis(directory: Path) -> Iterator[str]:
    """Run ``redis-server`` on a free loopback port; yield its URL (database 0)."""
    server = require_command("redis-server")
    cli = require_command("redis-cli")
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    command += ["no", "--dir", str(directory)]
    process = Process(f"redis-{port}", command, directory, {}, directory / "redis.log").start()

    def answers() -> bool:
        ping = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True)
        return ping.stdout.strip() == "PONG" or not process.running

    try:
        wait_for(answers, 20, lambda: f"redis-server did not answer:\n{process.output()}")
        assert process.running, f"redis-server exited:\n{process.output()}"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.stop()
