"""Instructions per request, counted by callgrind: ``python -m benchmarks.instructions``.

The wall-clock rows of ``python -m benchmarks`` move by a third on a busy machine; the number
of instructions the interpreter executes for a request does not (callgrind counts them, the
same for the same code and inputs whatever else the machine does). So this is the measure to
compare two versions of the template with, one run each, on any machine: the in-process
requests of the suite's CPU rows (test client, production settings, a table of 1,000 items),
each against bare Flask's /healthz. Needs valgrind (Debian's package, with its headers) and a
C compiler; about four minutes on 2 cores, most of it the interpreter starting under valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks import load
from benchmarks.suite import ANSWERS, IN_PROJECT, PACKAGE
from benchmarks.support import production_env, project_venv, render_project

# start() zeroes the count and starts counting; stop(name) writes it to a file of its own.
SHIM = """\
#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void stop(const char *name) { CALLGRIND_DUMP_STATS_AT(name); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def count(work: Path, rows: int, requests: int) -> dict[str, int]:
    """Instructions per request of each request ``in_project.instructions`` counts."""
    project = render_project(work, PACKAGE, "full", **ANSWERS)
    (work / "bare_app.py").write_text(load.BARE_APP)
    python = project_venv(project)
    (work / "shim.c").write_text(SHIM)
    shim = work / "shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", shim, work / "shim.c"], check=True)
    env = production_env(project, f"sqlite:///{work / 'instructions.db'}")
    env["PYTHONPATH"] += os.pathsep + str(work)
    out = work / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cmd += [python, IN_PROJECT, PACKAGE, "instructions", shim, str(rows), str(requests)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"callgrind failed:\n{done.stderr[-3000:]}")
    counts = {}
    for dump in sorted(work.glob("callgrind.out.*")):
        text = dump.read_text()
        name = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M).group(1)
        counts[name] = int(re.search(r"^totals: (\d+)", text, re.M).group(1)) // requests
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--rows", type=int, default=1000, help="items in the reader's list")
    parser.add_argument("--requests", type=int, default=50, help="requests counted per row")
    args = parser.parse_args()
    for tool in ("valgrind", "cc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install valgrind gcc")
    with tempfile.TemporaryDirectory(prefix="flaskscale-instructions-") as work:
        counts = count(Path(work), args.rows, args.requests)
    bare = counts.pop("bare /healthz")
    print(f"Instructions per request (callgrind), {args.rows} items, {args.requests} requests each")
    print()
    print("| request, in process | instructions | x bare Flask /healthz |")
    print("|---|---:|---:|")
    print(f"| `bare Flask /healthz` | {bare:,} | 1.00x |")
    for name, instructions in counts.items():
        print(f"| `{name}` | {instructions:,} | {instructions / bare:.2f}x |")


if __name__ == "__main__":
    main()
