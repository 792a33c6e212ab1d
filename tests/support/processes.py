"""Processes the tests start (servers, workers), and waiting for them.

Each process runs in a process group of its own, so that stopping it stops everything it
started (gunicorn's workers, Celery's pool), and its output goes to a log file to show when a
test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from support.services import free_port


class Process:
    """A command in its own process group, its output in a log file."""

    def __init__(
        self, name: str, cmd: list[str], cwd: Path, env: Mapping[str, str], log: Path
    ) -> None:
        self.name, self.cmd, self.cwd, self.env, self.log = name, cmd, cwd, dict(env), log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log.open("a") as out:  # the process keeps its own copy of the file
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """The process ids of the leader's children (gunicorn's workers, Celery's pool)."""
        return [
            int(pid)
            for pid in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        ]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group, then reap the leader."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)

    def stop(self) -> None:
        """SIGTERM, a few seconds' grace, then SIGKILL whatever is left of the group."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2)
        self.kill(signal.SIGKILL)


def wait_for(predicate: Callable[[], object], timeout: float, message: Callable[[], str] | str):
    """``predicate()``'s first true value within ``timeout`` seconds; fail with ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(message() if callable(message) else message)


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def answers(url: str) -> bytes | None:
    """The body of a 200 answer from ``url``, or None (no answer yet, or another status)."""
    try:
        status, body = http_get(url, timeout=2)
    except OSError:
        return None
    return body if status == 200 else None


def wait_for_http(url: str, timeout: float = 30, *processes: Process) -> bytes:
    """The body of ``url``'s first 200 answer; fail early if one of ``processes`` exits."""

    def ready() -> bytes | None:
        for process in processes:
            if not process.running:
                pytest.fail(f"{process.name} exited before {url} answered:\n{process.output()}")
        return answers(url)

    return wait_for(ready, timeout, f"{url} did not answer within {timeout} s")


def serve(
    project: Path, env: Mapping[str, str], log: Path, cleanup: contextlib.ExitStack
) -> tuple[str, Process]:
    """gunicorn with the project's own ``gunicorn.conf.py`` on a free loopback port, stopped by
    ``cleanup``: its URL and process, once ``/healthz`` answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
    cmd += ["--bind", f"127.0.0.1:{port}"]  # the config binds 0.0.0.0: stay on loopback
    gunicorn = Process("gunicorn", cmd, project, env, log).start()
    cleanup.callback(gunicorn.stop)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: answers(url + "/healthz") or not gunicorn.running,
        60,
        lambda: f"gunicorn did not start:\n{gunicorn.output()[-4000:]}",
    )
    assert gunicorn.running, gunicorn.output()[-4000:]
    return url, gunicorn
