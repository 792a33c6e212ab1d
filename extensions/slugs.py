"""Jinja helpers for ``copier.yml``: a project's package name, and why a name cannot be one.

Loaded through copier-template-extensions (``_jinja_extensions`` in ``copier.yml``), so that
plain Copier and ``flaskscale new`` judge a name by the same Python rules.
"""

from __future__ import annotations

import keyword
import re

from jinja2 import Environment
from jinja2.ext import Extension

# The slug is both the import name and the distribution name (PEP 508), ASCII only.
VALID = re.compile(r"^[a-z](?:[a-z0-9_]*[a-z0-9])?$")
# Modules a generated project imports: a package of the same name would shadow them.
# fmt: off
SHADOWED = frozenset({
    "alembic", "app", "celery", "config", "flask", "flask_caching", "flask_limiter",
    "flask_login", "flask_migrate", "flask_smorest", "flask_socketio", "flask_sqlalchemy",
    "flask_wtf", "gevent", "gunicorn", "jinja2", "kombu", "make_celery", "marshmallow",
    "migrations", "psycopg", "pytest", "redis", "socketio", "sqlalchemy", "test", "tests",
    "werkzeug", "wtforms",
})
# fmt: on


def slugify(name: str) -> str:
    """``"My Service-2.0"`` -> ``"my_service_2_0"``: lowercase ASCII letters, digits and ``_``."""
    lowered = re.sub(r"[\s.-]+", "_", name.strip().lower())
    return re.sub(r"[^a-z0-9_]", "", lowered)


def slug_problem(slug: str, name: str = "") -> str:
    """What is wrong with ``slug`` as the project's package, and the fix; empty when nothing."""
    if not slug:
        return (
            f'project_slug is empty (project_name "{name}" has no letters): '
            "pass --data project_slug=my_service"
        )
    if not VALID.match(slug):
        return (
            f'project_slug "{slug}" is not a valid package name: use ASCII lowercase letters, '
            "digits and underscores, starting with a letter and ending with a letter or digit, "
            "e.g. --data project_slug=my_service"
        )
    if keyword.iskeyword(slug):
        return (
            f'project_slug "{slug}" is a Python keyword: choose another, '
            f"e.g. --data project_slug={slug}_service"
        )
    if slug in SHADOWED:
        return (
            f'project_slug "{slug}" would shadow the "{slug}" module the project imports: '
            f"choose another, e.g. --data project_slug=my_{slug}"
        )
    return ""


class SlugExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["slugify"] = slugify
        environment.filters["slug_problem"] = slug_problem
