"""What a test needs from the machine: services on loopback, commands, Python packages.

A missing one skips the test with the reason, or fails it under ``FLASKSCALE_E2E=required``
(which ``.ci/run`` sets), so that CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import socket
from collections.abc import Iterator

import pytest

E2E_REQUIRED = os.environ.get("FLASKSCALE_E2E") == "required"


def missing(message: str) -> None:
    if E2E_REQUIRED:
        pytest.fail(f"{message} and FLASKSCALE_E2E=required")
    pytest.skip(message)


def service_available(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    if not service_available(host, port):
        missing(f"{name} is not reachable on {host}:{port}; start it to run this test")


def require_command(name: str) -> str:
    """The path of a tool."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (.ci/run installs it)")
    return path


def require_modules(*names: str) -> None:
    absent = [name for name in names if importlib.util.find_spec(name) is None]
    if absent:
        missing(f"Python packages missing: {', '.join(absent)} (the test extra installs them)")


def _port_candidates() -> Iterator[int]:
    """Ports below the kernel's ephemeral range, this xdist worker's share of them, in a random
    order. A port the kernel picked for ``bind(0)`` is one it also gives to outgoing
    connections, and the load tests open thousands: between the test seeing it free and a
    server binding it, one of them took it (EADDRINUSE, a server that never started)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ephemeral:
        first_ephemeral = int(ephemeral.read().split()[0])
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    ports = list(range(max(10_000, first_ephemeral - 12_000) + worker, first_ephemeral, workers))
    random.shuffle(ports)
    yield from ports


_candidates = _port_candidates()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on, never given twice by this process, nor by the
    other xdist workers (each draws from its own share)."""
    for port in _candidates:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    with socket.socket() as sock:  # no room below the ephemeral range: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
