"""The Python interpreters uv needs to lock projects of every ``python_version`` choice.

``uv lock`` needs an interpreter that satisfies the project's ``requires-python``; where none is
found it downloads one, which this machine's network cannot. pyenv's shims do not run a version
that is installed but not selected, so uv skips them: the newest installed
``~/.pyenv/versions/X.Y.*`` of each version is linked as ``pythonX.Y`` into ``bin_dir``, which
the caller puts on ``PATH``. A version with no such interpreter is left to what ``PATH`` has.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def expose(versions: list[str], bin_dir: Path) -> None:
    for version in versions:
        pythons = [
            folder / "bin" / f"python{version}"
            for folder in PYENV_VERSIONS.glob(f"{version}.*")
            if folder.name.removeprefix(f"{version}.").isdigit()
        ]
        pythons.sort(key=lambda python: int(python.parents[1].name.rsplit(".", 1)[1]))
        for python in reversed(pythons):
            if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
                (bin_dir / f"python{version}").symlink_to(python)
                break
