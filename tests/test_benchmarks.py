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
    figures = ("rps", "bare_rps", "ratio", "p50_ms", "p99_ms")
    for figure in (*figures, "best_ratio", "server_cpu_us", "bare_server_cpu_us"):
        assert isinstance(row[figure], float) and row[figure] > 0, (figure, row)
    assert len(row["runs"]) == len(row["bare_runs"]) == 1
    assert results["meta"]["cores"] >= 1

    table = (tmp_path / "results.md").read_text()
    line = next(line for line in table.splitlines() if line.startswith("| `GET /healthz`"))
    # req/s bare and generated, their ratio, the best runs' ratio; server CPU bare / generated
    figures = r"\| direct \| \d+ \| \d+ \| \d+\.\d\dx \| \d+\.\d\dx \| \d+ / \d+ \|"
    assert re.search(figures, line), line
    assert table in done.stdout  # printed as well, for a CI log

    png = (tmp_path / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_the_socketio_row_is_written_to_the_table_and_the_chart(tmp_path):
    """The fan-out section's figures (measured by benchmarks/fanout.py; here given) in the
    table, the JSON file and the chart."""
    require_modules("matplotlib")
    from benchmarks import report

    runs = [
        {"received": 1000, "p50_ms": 60.0 + n, "p99_ms": 95.0 + n, "max_ms": 99.0} for n in (0, 5)
    ]
    bare_runs = [{"received": 998, "p50_ms": 80.0, "p99_ms": 150.0, "max_ms": 160.0}] * 2
    fanout = {
        "key": "socketio",
        "clients": 1000,
        "connected": 2000,
        "p50_ms": 62.5,
        "p99_ms": 97.5,
        "max_ms": 99.0,
        "missed": 0,
        "runs": runs,
        "bare_p50_ms": 80.0,
        "bare_p99_ms": 150.0,
        "bare_max_ms": 160.0,
        "bare_missed": 4,
        "bare_runs": bare_runs,
        "p99_vs_bare": 0.65,
        "client_cpu_us_per_message": 51.0,
        "server_cpu_us_per_message": 120.0,
        "bare_server_cpu_us_per_message": 180.0,
    }
    meta = {"mode": "quick", "command": "python -m benchmarks --only socketio", "date": "today"}
    meta |= {"cores": 2, "load_before": "1", "load_after": "1", "wrk": "4", "seconds": 2}
    results = {"meta": {**meta, "rounds": 2}, "http": [], "cpu": [], "commands": []}
    results |= {"socketio": fanout, "skipped": [], "not_built": []}
    paths = report.write(results, tmp_path)

    table = paths["markdown"].read_text()
    row = "| 80 / 150 / 160 | 62 / 98 / 99 | 0.65x | 4 / 0 |"
    assert row in table, table
    assert "2,000 connected" in table and "51 us of their CPU a message" in table
    assert "bare 180, generated 120 us of CPU a client reached" in table
    assert json.loads(paths["json"].read_text())["socketio"]["p99_vs_bare"] == 0.65
    assert paths["chart"].read_bytes().startswith(b"\x89PNG")


def test_signed_in_page_and_celery_round_trip_rows_run_and_are_written(tmp_path):
    """The signed-in page is loaded with the cookie of a real login (the run stops if the page
    is not the signed-in one), and the Celery row times every job of each side."""
    require_command("wrk")
    require_command("redis-server")
    require_modules("matplotlib")
    cmd = [sys.executable, "-m", "benchmarks", "--only", "signed_in,celery", "--seconds", "1"]
    cmd += ["--rounds", "1", "--jobs", "4", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    [row] = results["http"]
    assert row["key"] == "signed_in" and row["failed"] == 0, row
    celery = results["celery"]
    assert celery["worker"].startswith("celery -A make_celery worker"), celery["worker"]
    assert celery["bare_worker"].startswith("celery -A bare_celery:celery_app worker")
    for side in ("bare", "generated"):
        figures = celery[side]
        assert figures["jobs"] == 4, figures
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], figures
        assert figures["jobs_per_s"] > 0 and len(figures["rates"]) == 1, figures
    assert celery["ratio"] > 0
    assert not any("Celery" in name or "signed-in" in name for name in results["not_built"])

    table = (tmp_path / "results.md").read_text()
    assert "| `GET / (web UI, signed in)` | direct |" in table
    assert re.search(r"\| `GET /api/v1/items/report \(token\).*\| 4 \| [\d.]+ \|", table), table


def test_the_celery_row_runs_the_procfiles_worker_command(tmp_path):
    """The round trip's worker is the project's own command, and bare Celery's differs in its
    app only."""
    from benchmarks.celery_trip import with_app, worker_command
    from benchmarks.support import render_project

    project = render_project(tmp_path, "bench_app", "full", celery=True, ci="none")
    command = worker_command(project)
    procfile = (project / "Procfile").read_text()
    assert command[:4] == ["celery", "-A", "make_celery", "worker"], command
    at_defaults = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", procfile)  # ${VAR:-default}
    assert f" {' '.join(command)}\n" in at_defaults, (command, procfile)
    assert with_app(command, "bare:app") == ["celery", "-A", "bare:app", *command[3:]]


def test_instruction_counts_come_for_every_request_with_bare_flask_as_one(tmp_path):
    """``python -m benchmarks.instructions``: callgrind's count of each in-process request."""
    require_command("valgrind")
    require_command("cc")
    cmd = [sys.executable, "-m", "benchmarks.instructions", "--rows", "30", "--requests", "2"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = re.findall(r"^\| `?([^|`]+)`? \| ([\d,]+) \| (\d+\.\d\d)x \|$", done.stdout, re.M)
    names = [name for name, _, _ in rows]
    assert names == [
        "bare Flask /healthz",
        "GET /healthz",
        "GET / (anonymous)",
        "web / signed in",
        "v1 first",
        "v2 first",
        "v2 last",
    ]
    counts = {name: int(count.replace(",", "")) for name, count, _ in rows}
    # The generated app does more than bare Flask on every request (hooks, headers, metrics).
    assert all(counts[name] > counts["bare Flask /healthz"] > 100_000 for name in names[1:])
