"""What the request metrics cost: ``/healthz`` requests per second with and without them.

    python -m benchmarks.metrics_overhead [--seconds 5] [--rounds 3]

Renders a project (preset api, SQLite) and starts its gunicorn, with its own gunicorn.conf.py
(2 workers of 4 threads), twice: as generated ("on"), and with the same config serving the same
app created with ``metrics.init_app`` left out ("off": nothing counted, the metrics server
idle). wrk loads each in turn, off-on, on-off, ... over the rounds, so that a machine getting
busier or quieter weighs on both alike. It prints each run, the medians and the best runs, and
their ratios. The best runs are the fairer pair: gunicorn's gthread workers accept greedily, and
in about half the runs one worker takes all of wrk's keep-alive connections and serves them
alone, at about a third of the rate, whichever app it runs (seen with top: one worker busy).
Then it makes the same comparison in one process through Flask's test client (the hooks' cost
per request, with the multiprocess files, without gunicorn's own cost per request).
A measurement, not a test: nothing here passes or fails on a figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.support import Server, production_env, project_venv, render_project, wrk

SLUG = "bench_metrics"
# The app without its metrics: create_app() with metrics.init_app a no-op.
WITHOUT_METRICS = f"""\
from unittest import mock

from {SLUG} import create_app, metrics

with mock.patch.object(metrics, "init_app", lambda app: None):
    app = create_app()
"""


# The same comparison without HTTP: the app's test client, in one process, in multiprocess
# mode (files), so that the figure is the hooks' cost on a request and little else.
IN_PROCESS = f"""\
import statistics, sys, time
from unittest import mock
from {SLUG} import create_app, metrics

with mock.patch.object(metrics, "init_app", lambda app: None):
    apps = {{"off": create_app().test_client()}}
apps["on"] = create_app().test_client()
times = {{"on": [], "off": []}}
for round_ in range(int(sys.argv[1])):
    for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
        start = time.perf_counter()
        for _ in range(3000):
            apps[name].get("/healthz", headers={{"Host": "127.0.0.1"}})
        times[name].append((time.perf_counter() - start) / 3000 * 1e6)
on, off = statistics.median(times["on"]), statistics.median(times["off"])
print(f"in process: {{on:.0f}} us a request with metrics, {{off:.0f}} us without")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="flaskscale-bench-"))
    project = render_project(root, SLUG, "api", database="sqlite", ci="none")
    (project / "without_metrics.py").write_text(WITHOUT_METRICS)
    python = project_venv(project)
    env = production_env(project, f"sqlite:///{project / 'bench.db'}")
    config = ["--config", "gunicorn.conf.py"]
    servers = {
        "on": Server("on", python, project, env, config),
        "off": Server("off", python, project, env, [*config, "without_metrics:app"]),
    }
    try:
        for server in servers.values():
            wrk(server.url("/healthz"), 1)  # warm up
        figures: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(args.rounds):
            for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                rps = wrk(servers[name].url("/healthz"), args.seconds)["rps"]
                figures[name].append(rps)
                print(f"round {round_ + 1} metrics {name:3}: {rps:8.1f} req/s")
    finally:
        for server in servers.values():
            server.stop()
    for label, pick in (("median", statistics.median), ("best", max)):
        on, off = pick(figures["on"]), pick(figures["off"])
        print(f"{label} with metrics {on:.1f} req/s, without {off:.1f} req/s:", end=" ")
        print(f"ratio on/off {on / off:.3f}, the metrics cost {(1 - on / off) * 100:.1f}%")
    files = Path(tempfile.mkdtemp(prefix="flaskscale-bench-metrics-"))
    in_process = {**env, "PROMETHEUS_MULTIPROC_DIR": str(files)}
    cmd = [str(python), "-c", IN_PROCESS, str(args.rounds)]
    subprocess.run(cmd, cwd=project, env=in_process, check=True)


if __name__ == "__main__":
    main()
