"""Requests per second over HTTP: bare Flask and the generated app under the same gunicorn
settings, loaded by wrk, each row paired with a run of bare Flask's /healthz next to it.

Within a round each pair runs bare-then-generated, the next round generated-then-bare, so that
a machine getting busier or quieter weighs on both alike; the ratio of a row is the median of
its runs over the median of its paired bare runs.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from benchmarks.support import (
    HOST,
    Server,
    free_port,
    local_config,
    wait_until_answers,
    wrk,
)

BARE_APP = '''\
"""Bare Flask: the baseline every row is compared with."""

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
'''

POST_ITEM = """\
wrk.method = "POST"
wrk.body = '{"name": "benchmark item", "description": "written by wrk"}'
wrk.headers["Content-Type"] = "application/json"
"""
POST_EMPTY = 'wrk.method = "POST"\n'


@dataclass
class Side:
    """Where one side of a pair answers, and the process groups serving it (gunicorn masters
    and their workers, nginx), whose CPU a request is counted."""

    url: str
    groups: list[int]


@dataclass
class Row:
    """One line of the table: ``path`` on the generated app (through ``via``) against bare
    Flask's /healthz (through the same ``via``)."""

    key: str
    label: str
    path: str
    via: str = "direct"
    headers: dict[str, str] = field(default_factory=dict)
    script: Path | None = None
    # Text the page must show, checked before it is loaded: a page that redirects to the login
    # form would otherwise be timed instead.
    marks: tuple[str, ...] = ()
    runs: list[dict] = field(default_factory=list)
    bare: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        rps, bare = median([r["rps"] for r in self.runs]), median([r["rps"] for r in self.bare])
        cpu = median([r["server_cpu_us"] for r in self.runs])
        bare_cpu = median([r["server_cpu_us"] for r in self.bare])
        return {
            "key": self.key,
            "label": self.label,
            "via": self.via,
            "rps": rps,
            "bare_rps": bare,
            "ratio": rps / bare,
            # The fastest run of each side: the runs where gunicorn spread wrk's connections
            # over both workers (see the README), so a ratio of like with like.
            "best_ratio": max(r["rps"] for r in self.runs) / max(r["rps"] for r in self.bare),
            "server_cpu_us": cpu,
            "bare_server_cpu_us": bare_cpu,
            "p50_ms": median([r["p50_ms"] for r in self.runs]),
            "p99_ms": median([r["p99_ms"] for r in self.runs]),
            "failed": sum(r["failed"] + r["socket_errors"] for r in self.runs),
            "runs": self.runs,
            "bare_runs": self.bare,
        }


def rows(work: Path, seeded: dict) -> list[Row]:
    """The rows, in order of priority."""
    (work / "post_item.lua").write_text(POST_ITEM)
    (work / "post_empty.lua").write_text(POST_EMPTY)
    reader = {"Authorization": f"Bearer {seeded['reader_token']}"}
    writer = {"Authorization": f"Bearer {seeded['writer_token']}"}
    basic = base64.b64encode(f"reader:{seeded['password']}".encode()).decode()
    return [
        Row("healthz", "GET /healthz", "/healthz"),
        Row("index", "GET / (web UI, anonymous)", "/"),
        Row(
            "signed_in",
            "GET / (web UI, signed in)",
            "/",
            headers=seeded["browser_headers"],
            marks=tuple(seeded["signed_in_marks"]),
        ),
        Row(
            "v1_items",
            "GET /api/v1/items?limit=20 (token)",
            "/api/v1/items?limit=20",
            headers=reader,
        ),
        Row(
            "v2_items",
            "GET /api/v2/items?limit=20 (token)",
            "/api/v2/items?limit=20",
            headers=reader,
        ),
        Row(
            "post_item",
            "POST /api/v2/items (token)",
            "/api/v2/items",
            headers=writer,
            script=work / "post_item.lua",
        ),
        Row(
            "token",
            "POST /api/v2/tokens (password)",
            "/api/v2/tokens",
            headers={"Authorization": f"Basic {basic}"},
            script=work / "post_empty.lua",
        ),
        Row("nginx_healthz", "GET /healthz", "/healthz", via="nginx"),
        Row(
            "nginx_v2_items",
            "GET /api/v2/items?limit=20 (token)",
            "/api/v2/items?limit=20",
            via="nginx",
            headers=reader,
        ),
    ]


def measure(rows: list[Row], bare: Side, generated: Side, seconds: float, rounds: int):
    """Runs each row against its paired bare /healthz, ``rounds`` times (see the docstring)."""
    for row in rows:  # warm up: imports, templates, connection pools
        wrk(generated.url + row.path, 1, row.headers, row.script)
    wrk(bare.url + "/healthz", 1)
    for round_ in range(rounds):
        for row in rows:
            pair = [(row.bare, bare.url + "/healthz", {}, None, bare.groups)]
            pair.append(
                (row.runs, generated.url + row.path, row.headers, row.script, generated.groups)
            )
            for runs, url, headers, script, groups in pair if round_ % 2 == 0 else pair[::-1]:
                runs.append(wrk(url, seconds, headers, script, groups))
            print(
                f"  round {round_ + 1} {row.via:6} {row.label:40} {row.runs[-1]['rps']:8.0f} req/s"
                f" {row.runs[-1]['server_cpu_us']:6.0f} us  (bare /healthz"
                f" {row.bare[-1]['rps']:.0f} req/s {row.bare[-1]['server_cpu_us']:.0f} us)",
                flush=True,
            )


def check_rows(rows: list[Row], url: str) -> None:
    """Each row's request answers 2xx once before it is loaded: a 401 or 404 at thousands of
    requests a second would pass for a fast app. A page with ``marks`` must answer 200, show
    them, and set no cookie: a session the app renews on every request is not a browser's."""
    for row in rows:
        cmd = ["curl", "-s", "-D", "-", "-X", "POST" if row.script else "GET"]
        for name, value in row.headers.items():
            cmd += ["-H", f"{name}: {value}"]
        if row.script and row.key == "post_item":
            cmd += ["-H", "Content-Type: application/json", "--data", json.dumps({"name": "x"})]
        answer = subprocess.run([*cmd, url + row.path], capture_output=True, text=True).stdout
        head, _, body = answer.partition("\n\n")  # text=True turned CRLF into \\n
        status = head.split(" ", 2)[1] if " " in head else "nothing"
        wrong = not status.startswith("2")
        if row.marks:
            cookies = "\nset-cookie:" in head.lower()
            wrong = wrong or status != "200" or cookies or not all(m in body for m in row.marks)
        if wrong:
            raise SystemExit(
                f"{row.label} answered {status} at {url}: the benchmark is wrong\n{answer[:2000]}"
            )


def nginx(project: Path, root: Path, ports: list[int]) -> tuple[subprocess.Popen, str]:
    """The project's nginx config balancing over ``ports``, on a port of its own."""
    port = free_port()
    config = local_config(project, root, ports, port)
    log = root / "nginx.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["nginx", "-c", str(config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    wait_until_answers(url + "/healthz", proc, log)
    return proc, url


def stop_all(servers: list[Server], proxies: list[subprocess.Popen]) -> None:
    for proxy in proxies:
        proxy.terminate()
        proxy.wait(10)
    for server in servers:
        server.stop()
