"""Wall-clock seconds of the generator's commands against bare Copier's, alternated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

from benchmarks.support import REPO


def pairs(work: Path) -> list[tuple[str, list[str], list[str]]]:
    """(label, flaskscale command, the Copier command it is compared with). ``flaskscale new``
    renders this checkout's last commit, so Copier copies the same commit."""
    flaskscale = [sys.executable, "-m", "flaskscale_gen"]
    copier = [sys.executable, "-m", "copier"]
    project = str(work / "cli_project")
    copy = ["copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "HEAD", str(REPO), project]
    return [
        ("--help", [*flaskscale, "--help"], [*copier, "--help"]),
        (
            "new --defaults --no-git (vs copier copy)",
            [*flaskscale, "new", project, "--defaults", "--no-git"],
            [*copier, *copy],
        ),
    ]


def seconds(cmd: list[str], work: Path) -> float:
    shutil.rmtree(work / "cli_project", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(work: Path, repeats: int) -> list[dict]:
    results = []
    for label, ours, theirs in pairs(work):
        times: dict[str, list[float]] = {"flaskscale": [], "copier": []}
        seconds(ours, work), seconds(theirs, work)  # warm up: disk cache, bytecode
        for n in range(repeats):
            order = [("flaskscale", ours), ("copier", theirs)]
            for name, cmd in order if n % 2 == 0 else order[::-1]:
                times[name].append(seconds(cmd, work))
        ours_s, theirs_s = median(times["flaskscale"]), median(times["copier"])
        print(f"  {label}: flaskscale {ours_s:.3f} s, copier {theirs_s:.3f} s", flush=True)
        results.append(
            {
                "label": label,
                "flaskscale_s": ours_s,
                "copier_s": theirs_s,
                "ratio": ours_s / theirs_s,
                "runs": times,
            }
        )
    return results
