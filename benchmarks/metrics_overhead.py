"""What the request metrics cost: ``/healthz`` requests per second with and without them.

    python benchmarks/metrics_overhead.py [--seconds 5] [--rounds 3]

Renders a project (preset api, SQLite) and starts its gunicorn, with its own gunicorn.conf.py
(WEB_CONCURRENCY=2), twice: as generated ("on"), and with the same config serving the same
app created with ``metrics.init_app`` left out ("off": nothing counted, the metrics server
idle). wrk loads each in turn, off-on, on-off, ... over the rounds, so that a machine getting
busier or quieter weighs on both alike. It prints each run, the medians and their ratio; then
the same comparison in one process through Flask's test client (the hooks' cost per request,
with the multiprocess files, less noisy than HTTP on a shared machine).
A measurement, not a test: nothing here passes or fails on a figure.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.rendering import preset, render, snapshot_template  # noqa: E402

SLUG = "bench_metrics"
# The app without its metrics: create_app() with metrics.init_app a no-op.
WITHOUT_METRICS = f"""\
from unittest import mock

from {SLUG} import create_app, metrics

with mock.patch.object(metrics, "init_app", lambda app: None):
    app = create_app()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(project: Path, env: dict[str, str], app: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
    cmd += ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"]
    cmd += [app] if app else []
    settings = {**env, "METRICS_PORT": str(free_port())}
    log = open(project / f"gunicorn-{port}.log", "w")  # noqa: SIM115  (the server keeps it)
    server = subprocess.Popen(cmd, cwd=project, env=settings, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/healthz"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"gunicorn did not start: see {log.name}")


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


def requests_per_second(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="flaskscale-bench-"))
    project = render(
        snapshot_template(root / "template"),
        root / SLUG,
        preset("api", project_name=SLUG, ci="none"),
    )
    (project / "without_metrics.py").write_text(WITHOUT_METRICS)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
        "PYTHONPATH": str(project),
        "FLASK_CONFIG": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TRUSTED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{project / 'bench.db'}",
        "WEB_CONCURRENCY": "2",
    }
    servers = {"on": start(project, env, None), "off": start(project, env, "without_metrics:app")}
    try:
        for url in (url for _, url in servers.values()):
            requests_per_second(url, 1)  # warm up
        figures: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(args.rounds):
            for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                figures[name].append(requests_per_second(servers[name][1], args.seconds))
                print(f"round {round_ + 1} metrics {name:3}: {figures[name][-1]:8.1f} req/s")
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(30)
    on, off = statistics.median(figures["on"]), statistics.median(figures["off"])
    print(f"median with metrics {on:.1f} req/s, without {off:.1f} req/s")
    print(f"ratio on/off {on / off:.3f}: the metrics cost {(1 - on / off) * 100:.1f}%")
    files = Path(tempfile.mkdtemp(prefix="flaskscale-bench-metrics-"))
    in_process = {**env, "PROMETHEUS_MULTIPROC_DIR": str(files)}
    cmd = [sys.executable, "-c", IN_PROCESS, str(args.rounds)]
    subprocess.run(cmd, cwd=project, env=in_process, check=True)


if __name__ == "__main__":
    main()
