"""The template versions this flaskscale can render or update to, and what each one changed."""

from __future__ import annotations

from dataclasses import dataclass

from flaskscale_gen.history import changelog, parse_name
from flaskscale_gen.template_source import template_root, template_source

CHANGELOG = "CHANGELOG.md"


@dataclass(frozen=True)
class Row:
    name: str
    summary: str
    installed: bool


def list_versions() -> list[Row]:
    """Every release (from the history), and the installed build when it is between releases."""
    path = template_root() / CHANGELOG
    notes = changelog(path.read_text(encoding="utf-8")) if path.is_file() else {}
    with template_source() as source:
        names, installed = source.versions, source.installed
    rows = []
    for name in names:
        parsed = parse_name(name)
        distance = parsed[1] if parsed else 0
        if distance and name != installed:
            continue
        if distance:
            release = name.rsplit(".post", 1)[0]
            summary = f"development build, {distance} commits after {release}"
        else:
            summary = notes.get(name, f"(no entry in {CHANGELOG})")
        rows.append(Row(name, summary, name == installed))
    return rows
