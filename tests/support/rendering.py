"""Rendering the template the one way the tests do: Copier on a snapshot of the working tree.

A snapshot (``copier.yml``, ``template/`` and ``extensions/`` in a plain folder) lets the tests see
uncommitted template changes and never depend on which git tags exist.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO / "src" / "flaskscale_gen" / "presets"


@cache
def template_extension(name: str) -> ModuleType:
    """``extensions/<name>.py``, the template's Jinja helpers: a file, as Copier loads it."""
    path = REPO / "extensions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_flaskscale_extension_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot_template(dest: Path) -> Path:
    """Copy ``copier.yml``, ``template/`` and ``extensions/`` into ``dest``: a plain folder."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "copier.yml", dest / "copier.yml")
    for folder in ("template", "extensions"):
        shutil.copytree(
            REPO / folder,
            dest / folder,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache"),
        )
    return dest


def render(template: Path, dest: Path, answers: Mapping[str, Any] | None = None) -> Path:
    """Render ``template`` into ``dest`` with ``answers`` and defaults for the rest."""
    from copier import run_copy

    run_copy(
        str(template),
        str(dest),
        data=dict(answers or {}),
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    return dest


def preset(name: str, **overrides: Any) -> dict[str, Any]:
    """The answers of ``src/flaskscale_gen/presets/<name>.yml``, with ``overrides``."""
    answers = yaml.safe_load((PRESETS / f"{name}.yml").read_text(encoding="utf-8"))
    return {**answers, **overrides}
