"""Wheels, wheelhouses and fresh virtualenvs: flaskscale as a user installs it.

A fresh virtualenv never sees the base interpreter's packages (a venv that shares them passes
only where packages were installed by hand), and installs from a local wheelhouse made while
the index is reachable, so that what follows can run offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from support.commands import run


def build(source: Path, outdir: Path, *, sdist_first: bool = False) -> Path:
    """The flaskscale-gen wheel of ``source`` (a checkout), optionally by way of its sdist."""
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir)]
    run([*command, *([] if sdist_first else ["--wheel"]), str(source)], cwd=source)
    (wheel,) = outdir.glob("flaskscale_gen-*.whl")
    return wheel


def wheelhouse(dest: Path, *requirements: str) -> Path:
    """Wheels of ``requirements`` and everything they need, downloaded once."""
    run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest), *requirements],
        cwd=dest.parent, timeout=900)  # fmt: skip
    return dest


def fresh_venv(path: Path) -> Path:
    """A virtualenv that sees none of this interpreter's packages."""
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    return path


def offline_pip(venv: Path, wheels: Path) -> list[str]:
    """``pip install`` in ``venv`` from ``wheels`` only."""
    return [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-index",
            "--find-links", str(wheels)]  # fmt: skip
