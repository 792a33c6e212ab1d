"""What a test needs from the machine: services on loopback, commands, Python packages.

A missing one skips the test with the reason, or fails it under ``FLASKSCALE_E2E=required``
(which ``.ci/run`` sets), so that CI never passes by skipping.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
