"""Socket.IO fan-out: one event to every connected client, over two processes and Redis.

Both sides run two gunicorn instances of one gevent worker each on loopback, against one Redis
server of the run's own (the message queue):

* generated: a project with Socket.IO (gevent) and the API, started with its own
  ``gunicorn.conf.py``, production settings; every client authenticates with an access token
  (all of one user) and the event is pushed by the project's ``push_to_user()`` from a third
  process, through the queue, as a Celery task or another web process would;
* bare: Flask-SocketIO with nothing but a message queue, the same gunicorn worker settings, no
  authentication; the event is broadcast from a third process by a write-only ``RedisManager``.

The clients (tests/support/socketio_clients.py: lean asyncio WebSockets offering
permessage-deflate, as browsers do) are spread over a few processes, half of each side's on
either instance, and stay connected while the rounds alternate bare, generated, then generated,
bare. An event carries its send time (``time.monotonic()``, one clock for every process) and
each client records when it got it; a round's figures are the p50, p99 and maximum of those
latencies, and the clients that got nothing within the settle time. What limits the figures:
the same two cores run the four servers, Redis, the pusher and the clients.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from statistics import median

from benchmarks.support import (
    REPO,
    RedisServer,
    Server,
    production_env,
    render_project,
)

PACKAGE = "fanout_app"
ANSWERS = {"socketio": True, "api": True, "celery": False, "docker": False, "kubernetes": False}
CLIENTS_SCRIPT = REPO / "tests" / "support" / "socketio_clients.py"
PUSH_SCRIPT = Path(__file__).with_name("fanout_push.py")
BARE_CHANNEL = "bare-fanout"
# The generated gunicorn.conf.py's worker settings, given to bare Flask-SocketIO as well.
WORKER_CONNECTIONS = 2000
BARE_WORKERS = ["--workers", "1", "--worker-class", "gevent"]
BARE_WORKERS += ["--worker-connections", str(WORKER_CONNECTIONS)]
CLIENT_PROCESSES = 4
SETTLE_SECONDS = 1.0  # after a push: a client that got nothing by then counts as missed

BARE_SOCKETIO_APP = '''\
"""Bare Flask-SocketIO: a message queue and nothing else, the fan-out's baseline."""

import os

from flask import Flask
from flask_socketio import SocketIO

app = Flask(__name__)
socketio = SocketIO(
    app,
    async_mode="gevent",
    message_queue=os.environ["FANOUT_REDIS_URL"],
    channel=os.environ["FANOUT_CHANNEL"],
)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
'''


def render(work: Path) -> Path:
    """The project this section measures, rendered into ``work``."""
    return render_project(work, PACKAGE, "full", ci="none", **ANSWERS)


def measure(
    project: Path, python: Path, work: Path, clients: int, rounds: int, deflate: bool = True
) -> dict:
    """The fan-out of ``rounds`` events to ``clients`` clients a side (see the docstring), on
    ``project`` (``render()``) with ``python``, which has its dependencies."""
    (work / "bare_socketio.py").write_text(BARE_SOCKETIO_APP)
    with ExitStack() as stack:
        redis = RedisServer(work).start()
        stack.callback(redis.stop)
        env = production_env(project, f"sqlite:///{work / 'fanout.db'}")
        env |= {"REDIS_URL": redis.url(), "GUNICORN_WORKER_CONNECTIONS": str(WORKER_CONNECTIONS)}
        token = in_project_seed(python, project, env)
        bare_env = {**env, "PYTHONPATH": str(work), "FANOUT_CHANNEL": BARE_CHANNEL}
        bare_env["FANOUT_REDIS_URL"] = redis.url()
        servers = {"bare": [], "generated": []}
        for _ in range(2):
            bare = Server("bare-sio", python, work, bare_env, ["bare_socketio:app"], BARE_WORKERS)
            stack.callback(bare.stop)
            servers["bare"].append(bare)
            config = ["--config", "gunicorn.conf.py"]
            generated = Server(PACKAGE, python, project, env, config, workers=[])
            stack.callback(generated.stop)
            servers["generated"].append(generated)
        pushers = {
            "bare": pusher(stack, python, work, bare_env, "bare", redis.url(), BARE_CHANNEL),
            "generated": pusher(stack, python, project, env, "generated", PACKAGE, token),
        }
        auth = {"bare": None, "generated": {"token": token}}
        started = time.monotonic()
        client_procs = connect(stack, servers, auth, clients, deflate)
        connected = sum(p["connected"] for p in client_procs)
        print(f"  {connected} clients connected in {time.monotonic() - started:.1f} s", flush=True)
        for side in ("bare", "generated"):  # Redis connections, first-event costs
            push(pushers[side], f"{side} warm-up")
        time.sleep(SETTLE_SECONDS)
        server_cpu = {"bare": 0.0, "generated": 0.0}
        for round_ in range(rounds):
            order = ("bare", "generated") if round_ % 2 == 0 else ("generated", "bare")
            for side in order:
                before = workers_cpu(servers[side])
                push(pushers[side], f"{side} {round_}")
                time.sleep(SETTLE_SECONDS)
                server_cpu[side] += workers_cpu(servers[side]) - before
        received, cpu_s = collect(client_procs)
    result = summary(received, clients, rounds, cpu_s, connected)
    for side, prefix in (("bare", "bare_"), ("generated", "")):
        delivered = sum(run["received"] for run in result[prefix + "runs"])
        per_message = server_cpu[side] / delivered * 1e6 if delivered else None
        result[prefix + "server_cpu_us_per_message"] = per_message
    return result


def workers_cpu(servers: list[Server]) -> float:
    """Seconds of CPU the gunicorn workers of ``servers`` have used (user and system): the
    cost of a round, however busy the machine is."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for server in servers:
        pid = server.proc.pid
        for worker in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def in_project_seed(python: Path, project: Path, env: dict) -> str:
    """A user and an access token in a fresh database: the one every generated client uses."""
    script = REPO / "benchmarks" / "in_project.py"
    done = subprocess.run(
        [str(python), str(script), PACKAGE, "seed", "1"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["reader_token"]


def pusher(stack: ExitStack, python: Path, cwd: Path, env: dict, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(python), str(PUSH_SCRIPT), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stack.callback(proc.wait, 10)
    stack.callback(proc.stdin.close)
    return proc


def push(proc: subprocess.Popen, label: str) -> None:
    proc.stdin.write(label + "\n")
    proc.stdin.flush()
    if proc.stdout.readline().strip() != "sent":
        raise SystemExit(f"the {label!r} push failed (its process exited {proc.poll()})")


def connect(stack: ExitStack, servers: dict, auth: dict, clients: int, deflate: bool) -> list[dict]:
    """``clients`` clients a side, split evenly over its two instances and CLIENT_PROCESSES
    processes; returns each process with what its clients reported on connecting."""
    per_process = clients // (2 * CLIENT_PROCESSES)
    procs = []
    for n in range(CLIENT_PROCESSES):
        extra = 1 if n < clients % (2 * CLIENT_PROCESSES) else 0  # odd counts still add up
        targets = [
            {"url": server.url(""), "clients": per_process + extra, "auth": auth[side]}
            for side, group in servers.items()
            for server in group
        ]
        proc = subprocess.Popen(
            [sys.executable, str(CLIENTS_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
        )
        stack.callback(proc.wait, 30)
        stack.callback(proc.stdin.close)
        proc.stdin.write(json.dumps({"targets": targets, "deflate": deflate}) + "\n")
        proc.stdin.flush()
        procs.append({"proc": proc, "targets": targets})
    for entry in procs:
        hello = json.loads(entry["proc"].stdout.readline() or "{}")
        if "connected" not in hello:
            raise SystemExit("a client process exited before connecting")
        if hello["refused"]:
            print(f"  refused: {hello['refused'][:3]}", flush=True)
        entry |= hello
    return procs


def collect(procs: list[dict]) -> tuple[dict[str, list[float]], float]:
    received: dict[str, list[float]] = {}
    cpu_s = 0.0
    for entry in procs:
        entry["proc"].stdin.write("report\nquit\n")
        entry["proc"].stdin.flush()
        report = json.loads(entry["proc"].stdout.readline())
        for label, latencies in report["received"].items():
            received.setdefault(label, []).extend(latencies)
        cpu_s += report["cpu_s"]
    return received, cpu_s


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(received: dict, clients: int, rounds: int, cpu_s: float, connected: int) -> dict:
    runs: dict[str, list[dict]] = {"bare": [], "generated": []}
    for side, side_runs in runs.items():
        for round_ in range(rounds):
            latencies = received.get(f"{side} {round_}", [])
            side_runs.append(
                {
                    "received": len(latencies),
                    "p50_ms": percentile(latencies, 0.50) if latencies else None,
                    "p99_ms": percentile(latencies, 0.99) if latencies else None,
                    "max_ms": max(latencies) if latencies else None,
                }
            )
            print(f"  round {round_ + 1} {side:9} {describe(side_runs[-1], clients)}", flush=True)
    result = {"key": "socketio", "clients": clients, "connected": connected}
    for side, side_runs in runs.items():
        prefix = "" if side == "generated" else "bare_"
        for figure in ("p50_ms", "p99_ms", "max_ms"):
            values = [r[figure] for r in side_runs if r[figure] is not None]
            result[prefix + figure] = median(values) if values else None
        result[prefix + "missed"] = sum(clients - r["received"] for r in side_runs)
        result[prefix + "runs"] = side_runs
    if result["p99_ms"] and result["bare_p99_ms"]:
        result["p99_vs_bare"] = result["p99_ms"] / result["bare_p99_ms"]
    # Every message each client process handled, both sides' rounds and warm-ups included.
    messages = sum(len(v) for v in received.values())
    result["client_cpu_us_per_message"] = cpu_s / messages * 1e6 if messages else None
    return result


def describe(run: dict, clients: int) -> str:
    if not run["received"]:
        return f"no client got the event (of {clients})"
    return (
        f"p50 {run['p50_ms']:6.1f} ms  p99 {run['p99_ms']:6.1f} ms  max {run['max_ms']:6.1f} ms"
        f"  missed {clients - run['received']}"
    )
