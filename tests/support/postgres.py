"""Throwaway PostgreSQL databases on the machine's server (trust authentication on loopback)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

HOST = "127.0.0.1"
PORT = 5432


def url(name: str) -> str:
    return f"postgresql://postgres@{HOST}:{PORT}/{name}"


def dsn(name: str) -> str:
    return f"host={HOST} port={PORT} user=postgres dbname={name}"


ADMIN_DSN = dsn("postgres")


def execute(sql: str, target: str = ADMIN_DSN) -> None:
    """Run one statement as the ``postgres`` superuser."""
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql)


def fetch(sql: str, target: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(target) as conn:
        return conn.execute(sql).fetchall()


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new, empty database named ``<prefix>_<random>``, dropped afterwards.

    A unique name per use: a run killed halfway leaves no database that the next run trips on.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
