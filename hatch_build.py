"""Build hook: ship the template's release history with the package.

A release wheel carries, next to the plain template, ``_template.bundle`` (a git bundle of every
``vX.Y.Z`` tag) and ``_build.json`` (which version it is, and whether it is a release). With them,
an installed ``flaskscale`` reproduces its own and every earlier template version offline, which
is what ``flaskscale update`` needs: Copier renders the old and the new version and merges.

* From a git checkout, the bundle is made from the checkout's tags. The build is a release when
  HEAD carries the tag ``v<version>`` and the template is unchanged since; otherwise it is a
  development build, and ``_build.json`` records the checkout path and ``git describe`` of HEAD.
* The sdist carries the same two files at its root, so a wheel built from it (what
  ``python -m build`` does) gets them too.
* With no git history and no such files (a plain export), there is no bundle: the build is
  assumed to be the release its version names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = "_template.bundle"
BUILD_INFO = "_build.json"
TEMPLATE_PATHS = ("copier.yml", "template", "migrations")


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def from_checkout(root: Path, version: str, out: Path) -> dict[str, Any]:
    """Write the bundle of release tags into ``out``; return the build info."""
    tags = git(root, "tag", "--list", "v[0-9]*").split()
    if tags:
        git(root, "bundle", "create", str(out / BUNDLE), *(f"refs/tags/{t}" for t in tags))
    head_tags = git(root, "tag", "--points-at", "HEAD").split()
    changed = git(root, "status", "--porcelain", "--", *TEMPLATE_PATHS)
    release = f"v{version}" in head_tags and not changed
    return {
        "version": version,
        "release": release,
        "checkout": None if release else str(root.resolve()),
        "commit": f"v{version}" if release else git(root, "describe", "--tags", "--always"),
        "bundle": bool(tags),
    }


class TemplateHistoryHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":  # an editable install runs from the checkout itself
            return
        root = Path(self.root)
        self._tmp = Path(tempfile.mkdtemp(prefix="flaskscale-build-"))
        info: dict[str, Any] | None = None
        if (root / ".git").exists() and shutil.which("git"):
            try:
                info = from_checkout(root, self.metadata.version, self._tmp)
            except subprocess.CalledProcessError as exc:
                self.app.display_warning(f"no template history in this build: {exc.stderr}")
        elif (root / BUILD_INFO).is_file():  # building from an sdist made by this hook
            info = json.loads((root / BUILD_INFO).read_text())
            if (root / BUNDLE).is_file():
                shutil.copy2(root / BUNDLE, self._tmp / BUNDLE)
        if info is None:
            return
        (self._tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        prefix = "flaskscale_gen/" if self.target_name == "wheel" else ""
        for name in (BUILD_INFO, BUNDLE):
            if (self._tmp / name).is_file():
                build_data["force_include"][str(self._tmp / name)] = prefix + name

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
