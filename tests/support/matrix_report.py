"""A pytest plugin: the option matrix's combination x check table, at the end of the run.

Each combination's results travel in the reports' ``user_properties`` (which pytest-xdist
carries from its workers); registered in ``conftest.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from support.options import CHECKS, build_matrix

# --------------------------------------------------------------------------- summary plugin

_results: dict[str, dict[str, str]] = {}


def record(user_properties: list, combination: str, results: Mapping[str, str]) -> None:
    user_properties.append(("matrix", json.dumps({"id": combination, "checks": dict(results)})))


def pytest_runtest_logreport(report) -> None:
    for name, value in getattr(report, "user_properties", ()):
        if name == "matrix":
            data = json.loads(value)
            _results[data["id"]] = data["checks"]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _results or hasattr(config, "workerinput"):
        return
    columns = [*CHECKS, "secs"]
    width = max(len(i) for i in _results)
    tr = terminalreporter
    tr.section(f"option matrix: {len(_results)} combinations x {len(CHECKS)} checks")
    tr.write_line(" " * width + "  " + " ".join(f"{c:>9}" for c in columns))
    order = {c.id: n for n, c in enumerate(build_matrix().valid)}
    for combination in sorted(_results, key=lambda i: order.get(i, len(order))):
        checks = _results[combination]
        cells = [checks.get(c, "-") for c in columns]
        tr.write_line(f"{combination:<{width}}  " + " ".join(f"{c:>9}" for c in cells))
    failed = sum(any(v == "FAIL" for v in c.values()) for c in _results.values())
    tr.write_line(f"{len(_results) - failed} green, {failed} with failures")
