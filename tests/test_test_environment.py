"""The generator's test extra holds the union of every generated project's dependencies.

The generated suites run in this one environment (fast: no install per combination), which
is only honest if everything a generated project declares is installed here too.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from support.rendering import REPO, preset, render

VARIANTS = {
    "full-redis-gevent": {"celery_broker": "redis", "socketio_async_mode": "gevent"},
    "full-rabbitmq-threading": {"celery_broker": "rabbitmq", "socketio_async_mode": "threading"},
}


def requirement_key(requirement: str) -> tuple[str, frozenset[str]]:
    """``"Flask-SQLAlchemy[x,y]>=3"`` -> ``("flask-sqlalchemy", {"x", "y"})``."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, requirement
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    extras = frozenset(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
    return name, extras


def declared(pyproject: dict, *extras: str) -> dict[str, frozenset[str]]:
    project = pyproject["project"]
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    result: dict[str, frozenset[str]] = {}
    for requirement in requirements:
        name, names_extras = requirement_key(requirement)
        result[name] = result.get(name, frozenset()) | names_extras
    return result


@pytest.mark.parametrize("answers", VARIANTS.values(), ids=VARIANTS.keys())
def test_test_extra_covers_the_generated_dependencies(template_dir, tmp_path, answers):
    project = render(template_dir, tmp_path / "p", preset("full", **answers))
    generated = declared(tomllib.loads((project / "pyproject.toml").read_text()), "dev")
    ours = declared(tomllib.loads((REPO / "pyproject.toml").read_text()), "test")
    missing = {
        name: sorted(extras - ours.get(name, frozenset()))
        for name, extras in generated.items()
        if name not in ours or not extras <= ours[name]
    }
    assert not missing, f"add to the test extra of pyproject.toml: {missing}"
    for name in generated:
        try:
            version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is declared but not installed: pip install -e '.[test]'")


def test_no_test_makes_a_virtualenv_that_sees_the_base_interpreters_packages():
    """A venv made with --system-site-packages from this virtualenv's interpreter sees the *base*
    interpreter's packages: a test using one passes only where they were installed by hand."""
    flag = "--system-site-packages"
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if flag in line
    ]
    assert offenders == []


@pytest.mark.xdist_group("services")
def test_tests_of_one_xdist_group_run_on_one_worker(request):
    """``--dist loadgroup`` keeps a group on one worker by suffixing its node ids (``@name``).

    The tests that drive RabbitMQ, podman and real servers rely on it: in parallel they would
    starve each other of the two cores. pytest 9.2 broke the suffix; the Celery tasks lost on
    Redis then were flushed by the other worker's copy of a fixture on the same Redis database,
    which is why the live tests now run Redis servers of their own (support.redis).
    """
    if getattr(request.config.option, "loadgroup", False):  # set on the workers by xdist
        assert request.node.nodeid.endswith("@services"), request.node.nodeid
