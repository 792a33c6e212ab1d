"""The benchmark suite (``python -m benchmarks``) runs end to end and writes what a reader looks
at: the table, the JSON file and the chart. The figures themselves are never judged here."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from support.rendering import REPO
from support.services import require_command, require_modules


def test_smallest_run_writes_a_table_a_json_file_and_a_chart(tmp_path):
    require_command("wrk")
    require_modules("matplotlib")
    cmd = [sys.executable, "-m", "benchmarks", "--only", "healthz", "--seconds", "1"]
    cmd += ["--rounds", "1", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    [row] = results["http"]
    assert row["key"] == "healthz"
    for figure in ("rps", "bare_rps", "ratio", "p50_ms", "p99_ms"):
        assert isinstance(row[figure], float) and row[figure] > 0, (figure, row)
    assert len(row["runs"]) == len(row["bare_runs"]) == 1
    assert results["meta"]["cores"] >= 1

    table = (tmp_path / "results.md").read_text()
    line = next(line for line in table.splitlines() if line.startswith("| `GET /healthz`"))
    assert re.search(r"\| direct \| \d+ \| \d+ \| \d+\.\d\dx \|", line), line
    assert table in done.stdout  # printed as well, for a CI log

    png = (tmp_path / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
