"""Build hook: ship the template with its whole history, so any build can update projects.

A wheel carries, under ``flaskscale_gen/``:

* ``_template/``: ``copier.yml``, ``template/``, ``migrations/``, ``extensions/`` and
  ``CHANGELOG.md`` as the
  checkout's last commit has them (uncommitted changes are left out, with a warning);
* ``_template.bundle``: a git bundle of the history, with every commit's version name as a tag
  (``flaskscale_gen/history.py`` names them: ``v0.2.0``, ``v0.2.0.post3``...), so the names
  resolve whether or not the checkout has tags;
* ``_build.json``: the version name of the commit the wheel was built from.

The sdist carries the bundle and ``_build.json`` at its root, so a wheel built from it (what
``python -m build`` does) gets them too. With no git history and no such files (a plain export)
there is no bundle: the build is taken to be the release its version names.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = "_template.bundle"
BUILD_INFO = "_build.json"
TEMPLATE_PATHS = ("copier.yml", "template", "migrations", "extensions", "CHANGELOG.md")


def load_history(root: Path):
    """``flaskscale_gen.history`` from this source tree (not whatever is installed)."""
    path = root / "src" / "flaskscale_gen" / "history.py"
    spec = importlib.util.spec_from_file_location("_flaskscale_build_history", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def export_head(root: Path, dest: Path) -> None:
    """The template files as HEAD has them, into ``dest``."""

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True).stdout

    present = git("ls-tree", "--name-only", "HEAD", "--", *TEMPLATE_PATHS).decode().split()
    archive = git("archive", "--format=tar", "HEAD", "--", *present)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


class TemplateHistoryHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":  # an editable install runs from the checkout itself
            return
        root = Path(self.root)
        self._tmp = tmp = Path(tempfile.mkdtemp(prefix="flaskscale-build-"))
        template = root
        if (root / ".git").exists() and shutil.which("git"):
            history = load_history(root)
            try:
                head = history.tagged_repository(root, tmp / "history.git")[-1]
                history.write_bundle(tmp / "history.git", tmp / BUNDLE)
                dirty = history.is_dirty(root, *TEMPLATE_PATHS)
            except history.HistoryError as exc:
                raise RuntimeError(f"flaskscale build: {exc}") from None
            if dirty:
                self.app.display_warning(
                    f"flaskscale build: uncommitted template changes are not in this build; "
                    f"it carries {head.name} ({head.commit[:12]}): commit them to include them"
                )
            info = {"version": head.name, "commit": head.commit}
            template = tmp / "template-at-head"
            export_head(root, template)
        elif (root / BUILD_INFO).is_file():  # building from an sdist made by this hook
            info = json.loads((root / BUILD_INFO).read_text())
            if (root / BUNDLE).is_file():
                shutil.copy2(root / BUNDLE, tmp / BUNDLE)
        else:
            info = {"version": f"v{self.metadata.version}", "commit": None}
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")

        included = build_data["force_include"]
        prefix = "flaskscale_gen/" if self.target_name == "wheel" else ""
        for name in (BUILD_INFO, BUNDLE):
            if (tmp / name).is_file():
                included[str(tmp / name)] = prefix + name
        if self.target_name == "wheel":
            for name in TEMPLATE_PATHS:
                if (template / name).exists():
                    included[str(template / name)] = f"flaskscale_gen/_template/{name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
