"""The generated service side by side with bare Flask: ``python -m benchmarks [--quick]``.

Renders a project (web UI and API v1+v2, SQLite; again with Celery for its row), installs its
dependencies into a cached virtualenv, and measures, each against bare Flask in the same run:

* requests per second over HTTP (wrk), gunicorn ``-w 2 -k gthread --threads 4`` on both sides,
  production settings, rate limits raised out of the way, and the CPU the servers spent a
  request; then the same through the project's nginx config over two instances of each;
* CPU time per request of the API's list pages and of the signed-in home page in process, by
  table size and page depth, on SQLite and (if its server answers on 127.0.0.1:5432) PostgreSQL;
* the Celery round trip, from an asynchronous request's 202 to its result, of the project
  rendered with Celery against bare Flask + bare Celery (``celery_trip.py``);
* ``flaskscale --help`` and ``flaskscale new`` against bare Copier;
* Socket.IO fan-out: one event to 1,000 clients over two gevent instances and the Redis
  message queue, delivery latency against bare Flask-SocketIO (``fanout.py``).

It prints a table and writes it, a JSON file and a PNG chart to ``benchmarks/results/``.
A measurement, not a test: nothing here passes or fails on a figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from benchmarks import celery_trip, commands, fanout, load, report
from benchmarks.support import (
    REPO,
    Server,
    production_env,
    project_venv,
    render_project,
    service_available,
    throwaway_database,
)

PACKAGE = "bench_app"
CELERY_PACKAGE = f"{PACKAGE}_celery"
IN_PROJECT = Path(__file__).with_name("in_project.py")
# The project measured: every page kind the rows need, and nothing that needs a service.
ANSWERS = {
    "celery": False,
    "socketio": False,
    "docker": False,
    "kubernetes": False,
    "ci": "none",
}
HTTP_ITEMS = 1000  # the reader's items in the HTTP rows' database
MODES = {
    # 2 s a run, 100 requests a timing and 40 jobs took 7.1 min, its virtualenv installed, on
    # 2 cores losing 8-15% to steal: trimmed to keep within 5.
    "quick": {
        "seconds": 1,
        "rounds": 3,
        "sizes": "1000,10000",
        "requests": 60,
        "repeats": 3,
        "jobs": 30,
    },
    # 5 s a run, 5 rounds, 200 requests a timing and 120 jobs were still in the PostgreSQL
    # 100,000-row timings at 15.5 min on 2 cores losing 8-15% to steal: trimmed to keep within 20.
    "full": {
        "seconds": 3,
        "rounds": 4,
        "sizes": "1000,10000,100000",
        "requests": 100,
        "repeats": 5,
        "jobs": 80,
    },
}
SECTIONS = ["cpu", "celery", "commands", "socketio"]
NOT_BUILT: list[str] = []
FANOUT_CLIENTS = 1000  # a side


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer seconds, rounds and rows")
    parser.add_argument("--seconds", type=int, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, help="rounds of runs (and of CPU timings)")
    parser.add_argument("--sizes", help="table sizes of the CPU rows, e.g. 1000,10000")
    parser.add_argument("--requests", type=int, help="requests per CPU timing")
    parser.add_argument("--repeats", type=int, help="runs of each command")
    parser.add_argument("--jobs", type=int, help="Celery jobs per batch (one batch a round)")
    parser.add_argument(
        "--only",
        help="comma-separated rows and sections, e.g. healthz,v2_items,cpu (the JSON's keys)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    for name, value in MODES["quick" if args.quick else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.only = set(args.only.split(",")) if args.only else None
    return args


def in_project(python: Path, env: dict, *args: str, package: str = PACKAGE) -> dict:
    cmd = [str(python), str(IN_PROJECT), package, *args]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed")
    return json.loads(done.stdout)


def http_rows(project: Path, python: Path, work: Path, args) -> list[dict]:
    env = production_env(project, f"sqlite:///{work / 'http.db'}")
    env["PYTHONPATH"] += os.pathsep + str(work)
    seeded = in_project(python, env, "seed", str(HTTP_ITEMS))
    rows = load.rows(work, seeded)
    unknown = (args.only or set()) - {row.key for row in rows} - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--only: no row or section {', '.join(sorted(unknown))}")
    rows = [row for row in rows if wanted(args, row.key)]
    results = []
    for via in ("direct", "nginx"):
        selected = [row for row in rows if row.via == via]
        if not selected:
            continue
        instances = 1 if via == "direct" else 2
        generated_env = env if via == "direct" else {**env, "PROXY_COUNT": "1"}
        servers: list[Server] = []  # each one as it starts: a later failure stops them all
        proxies: list[subprocess.Popen] = []
        try:
            for _ in range(instances):
                servers.append(
                    Server("bare", python, work, env, ["--access-logfile", "-", "bare_app:app"])
                )
            for _ in range(instances):
                config = ["--config", "gunicorn.conf.py"]
                servers.append(Server(PACKAGE, python, project, generated_env, config))
            sides = []
            for name, group in (("bare", servers[:instances]), ("generated", servers[instances:])):
                side = load.Side(group[0].url(""), [s.proc.pid for s in group])
                if via == "nginx":
                    proxy, side.url = load.nginx(
                        project, work / f"nginx-{name}", [s.port for s in group]
                    )
                    proxies.append(proxy)
                    side.groups.append(proxy.pid)
                sides.append(side)
            print(f"HTTP, {via}: bare {sides[0].url}, generated {sides[1].url}", flush=True)
            load.check_rows(selected, sides[1].url)
            load.measure(selected, *sides, args.seconds, args.rounds)
        finally:
            load.stop_all(servers, proxies)
        results += [row.summary() for row in selected]
    return results


def cpu_rows(project: Path, python: Path, work: Path, args, skipped: list[str]) -> list[dict]:
    results = []
    for database in ("sqlite", "postgresql"):
        if database == "postgresql" and not service_available("127.0.0.1", 5432):
            skipped.append("PostgreSQL list pages (no server on 127.0.0.1:5432)")
            continue
        print(f"CPU per request, {database}:", flush=True)
        if database == "postgresql":
            with throwaway_database("flaskscale_bench") as name:
                url = f"postgresql://postgres@127.0.0.1:5432/{name}"
                timings = cpu_timings(project, python, work, url, args)
        else:  # the probes need no database: timed once, here
            url = f"sqlite:///{work / 'cpu.db'}"
            timings = cpu_timings(project, python, work, url, args, "probes")
        bare = median(timings["bare"])
        smallest = {}
        for page in timings["pages"]:
            page["us"] = median(page["runs"])
            smallest.setdefault(page["page"], page["us"])  # sizes come smallest first
        for page in timings["pages"]:
            results.append(
                {
                    **page,
                    "database": database,
                    "bare_us": bare,
                    "cost_vs_bare": page["us"] / bare,
                    "vs_smallest": page["us"] / smallest[page["page"]] if page["rows"] else None,
                }
            )
    return results


def cpu_timings(project: Path, python: Path, work: Path, url: str, args, *extra: str) -> dict:
    env = production_env(project, url)
    env["PYTHONPATH"] += os.pathsep + str(work)
    sizes = ",".join(str(n) for n in sorted(int(n) for n in args.sizes.split(",")))
    return in_project(python, env, "cpu", sizes, str(args.requests), str(args.rounds), *extra)


def celery_row(project: Path, python: Path, work: Path, args) -> dict:
    """The round trip of the project rendered with Celery (``CELERY_PACKAGE``: a queue of its
    own) against bare Flask + Celery."""
    package = CELERY_PACKAGE
    env = production_env(project, f"sqlite:///{work / 'celery.db'}")
    env["PYTHONPATH"] += os.pathsep + str(work)

    def seed(side_env: dict) -> dict:
        return in_project(python, side_env, "seed", "0", package=package)

    return celery_trip.measure(project, python, work, env, seed, args.jobs, args.rounds)


def wanted(args, key: str) -> bool:
    return args.only is None or key in args.only


def main() -> None:
    args = arguments()
    mode = "quick" if args.quick else "full"
    work = Path(tempfile.mkdtemp(prefix="flaskscale-bench-"))
    work.chmod(0o755)  # nginx's workers may run as another user
    started = datetime.datetime.now(datetime.UTC)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    results = {
        "meta": {
            "mode": mode,
            "command": shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]]),
            "date": started.strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(),
            "load_before": " ".join(f"{n:.2f}" for n in os.getloadavg()),
            "wrk": wrk_version[1] if len(wrk_version) > 1 else "?",
            "seconds": args.seconds,
            "rounds": args.rounds,
        },
        "http": [],
        "cpu": [],
        "celery": None,
        "commands": [],
        "socketio": None,
        "skipped": [],
        "not_built": NOT_BUILT,
    }
    try:
        project = render_project(work, PACKAGE, "full", **ANSWERS)
        (work / "bare_app.py").write_text(load.BARE_APP)
        redis = shutil.which("redis-server") is not None
        with_celery, with_socketio = (wanted(args, key) and redis for key in ("celery", "socketio"))
        # The project again with Celery, and with Socket.IO, for their rows: rendered first, so
        # that one virtualenv holds what they all need.
        if with_celery:
            answers = {**ANSWERS, "celery": True}
            celery_project = render_project(work, CELERY_PACKAGE, "full", **answers)
        if with_socketio:
            socketio_project = fanout.render(work)
        others = [celery_project] if with_celery else []
        others += [socketio_project] if with_socketio else []
        python = project_venv(project, *others)
        results["http"] = http_rows(project, python, work, args)
        if wanted(args, "cpu"):
            results["cpu"] = cpu_rows(project, python, work, args, results["skipped"])
        if with_celery:
            results["celery"] = celery_row(celery_project, python, work, args)
        elif wanted(args, "celery"):
            results["skipped"].append("Celery round trip (no redis-server to start)")
        if wanted(args, "commands"):
            print("Commands:", flush=True)
            results["commands"] = commands.measure(work, args.repeats)
        if with_socketio:
            print(f"Socket.IO fan-out to {FANOUT_CLIENTS} clients:", flush=True)
            results["socketio"] = fanout.measure(
                socketio_project, python, work, FANOUT_CLIENTS, args.rounds
            )
        elif wanted(args, "socketio"):
            results["skipped"].append("Socket.IO fan-out (no redis-server to start)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["meta"]["load_after"] = " ".join(f"{n:.2f}" for n in os.getloadavg())
    minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
    results["meta"]["minutes"] = round(minutes, 1)
    paths = report.write(results, args.out)
    print()
    print(paths["markdown"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()) + f" ({minutes:.1f} min)")
