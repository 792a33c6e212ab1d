"""Celery workers started by the tests."""

from __future__ import annotations

import secrets


def node_name(prefix: str) -> str:
    """A worker node name (``-n``) no other worker has used.

    RabbitMQ keeps a killed worker's exclusive pidbox queue until its connection times out; a
    new worker with the same name dies with RESOURCE_LOCKED. A random part makes every name new.
    """
    return f"{prefix}-{secrets.token_hex(4)}@%h"
