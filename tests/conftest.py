"""Fixtures shared by the generator's tests; the helpers they use live in ``tests/support/``.

Projects are rendered from a snapshot of the working tree (``support.rendering``), so tests
see uncommitted template changes and never depend on which git tags exist.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import interpreters
from support.processes import Process
from support.rendering import REPO, snapshot_template

# The option matrix's summary table (combination x check), and the container image's build
# time, size and start-up time, at the end of a run.
pytest_plugins = ["support.matrix_report", "support.podman"]

# Keep a developer's own Copier settings (defaults, trust lists) out of the tests.
_SETTINGS = Path("/tmp/flaskscale-empty-copier-settings.yml")
_SETTINGS.write_text("{}\n")
os.environ["COPIER_SETTINGS_PATH"] = str(_SETTINGS)
# A Copier mirror cache per test process, set before Copier (and plumbum, which copies the
# environment once) is imported: Copier's migrations run nested Copiers with that copy, and two
# xdist workers updating one shared mirror fail with "cannot lock ref".
_CACHE = tempfile.mkdtemp(prefix="flaskscale-copier-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["COPIER_CACHE_DIR"] = _CACHE
# The commands a generated project runs (uv at generation, pre-commit's hooks) are this
# environment's, whether or not it was activated; uv finds a Python of every python_version.
_BIN = Path(tempfile.mkdtemp(prefix="flaskscale-pythons-"))
atexit.register(shutil.rmtree, _BIN, ignore_errors=True)
interpreters.expose(
    yaml.safe_load((REPO / "copier.yml").read_text())["python_version"]["choices"], _BIN
)
os.environ["PATH"] = os.pathsep.join(
    [str(Path(sys.executable).parent), str(_BIN), os.environ["PATH"]]
)


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def chdir_tmp(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture
def started() -> Iterator[list[Process]]:
    """Processes a test starts: every one is stopped at the end of the test."""
    processes: list[Process] = []
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flaskscale-gen wheel, built once per session from this checkout."""
    from support.wheels import build

    return build(REPO, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, built_wheel: Path) -> Path:
    """flaskscale's dependencies and its build backend, for installs that run offline."""
    from support.wheels import wheelhouse

    return wheelhouse(tmp_path_factory.mktemp("wheelhouse"), str(built_wheel), "hatchling")
