"""Runs of identical lines in two places: code written twice that one function could serve.

Blank lines, comments, imports and lone brackets are passed over and white space is folded,
as a reader skims them; what is left must not repeat for ``MIN_LINES`` lines or more.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

MIN_LINES = 6
_SKIPPED = re.compile(r"^(#.*|import .*|from \S+ import .*|[()\[\]{}.,:;]*)$")


def meaningful_lines(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = " ".join(raw.split())
        if line and not _SKIPPED.match(line):
            lines.append((number, line))
    return lines


def duplicated_runs(files: Iterable[Path], root: Path) -> list[str]:
    """``a.py:10-17 ~ b.py:40-47`` for each run of ``MIN_LINES`` lines found twice."""
    seen: dict[tuple[str, ...], list[tuple[str, int, int]]] = defaultdict(list)
    for path in files:
        lines = meaningful_lines(path)
        name = path.relative_to(root).as_posix()
        for start in range(len(lines) - MIN_LINES + 1):
            window = lines[start : start + MIN_LINES]
            seen[tuple(text for _, text in window)].append((name, window[0][0], window[-1][0]))
    pairs = []
    for places in seen.values():
        first = places[0]
        for other in places[1:]:
            same_file_overlap = other[0] == first[0] and other[1] <= first[2]
            if not same_file_overlap:
                pairs.append(f"{first[0]}:{first[1]}-{first[2]} ~ {other[0]}:{other[1]}-{other[2]}")
    return sorted(set(pairs))
