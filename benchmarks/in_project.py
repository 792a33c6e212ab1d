"""Runs in a rendered project's virtualenv, the project and the bare app on PYTHONPATH, its
production settings in the environment; prints JSON.

    python in_project.py PACKAGE seed ITEMS
        Tables, a reader with ITEMS items and a writer with none, and a token for each.
    python in_project.py PACKAGE cpu ROWS[,ROWS...] REQUESTS ROUNDS [probes]
        CPU time (time.process_time) per request of the list pages, v1 (first, middle and last
        page; the first with its total) and v2 (cursor at the same depths), through the test
        client, for each table size;
        with "probes", of /healthz and the anonymous index page too; and of bare Flask's
        /healthz, the same way.
"""

from __future__ import annotations

import base64
import importlib
import json
import statistics
import sys
import time

import sqlalchemy as sa

PASSWORD = "correct horse battery staple"
HOST = {"Host": "127.0.0.1"}
PAGE = 20


def seed(package: str, items: int) -> dict:
    """Empty tables; a reader owning ``items`` items, a writer owning none; their tokens."""
    app = importlib.import_module(package).create_app()
    db = importlib.import_module(f"{package}.extensions").db
    User = importlib.import_module(f"{package}.models").User
    Item = importlib.import_module(f"{package}.example").Item
    Token = importlib.import_module(f"{package}.api.models").Token
    with app.app_context():
        db.drop_all()
        db.create_all()
        users = {}
        for name in ("reader", "writer"):
            users[name] = User(username=name, email=f"{name}@example.com")
            users[name].password = PASSWORD
        db.session.add_all(users.values())
        db.session.commit()
        owner = users["reader"].id
        rows = [{"name": f"item {n}", "owner_id": owner} for n in range(items)]
        db.session.execute(sa.insert(Item), rows)
        tokens = {name: Token.issue(user) for name, user in users.items()}
        db.session.add_all(tokens.values())
        db.session.commit()
        last_id = db.session.scalar(sa.select(sa.func.max(Item.id)))
        result = {f"{name}_token": token.access_token for name, token in tokens.items()}
    return {**result, "password": PASSWORD, "last_item_id": last_id}


def cursor(item_id: int) -> str:
    return base64.urlsafe_b64encode(str(item_id).encode()).decode()


def pages(rows: int, last_id: int) -> dict[str, str]:
    """The pages timed at a table of ``rows`` rows whose newest id is ``last_id``."""
    first_id = last_id - rows + 1
    return {
        "v1 first": f"/api/v1/items?limit={PAGE}",
        "v1 middle": f"/api/v1/items?limit={PAGE}&offset={rows // 2}",
        "v1 last": f"/api/v1/items?limit={PAGE}&offset={rows - PAGE}",
        "v1 first, total": f"/api/v1/items?limit={PAGE}&total=true",
        "v2 first": f"/api/v2/items?limit={PAGE}",
        "v2 middle": f"/api/v2/items?limit={PAGE}&cursor={cursor(last_id - rows // 2 + 1)}",
        "v2 last": f"/api/v2/items?limit={PAGE}&cursor={cursor(first_id + PAGE)}",
    }


def cpu_per_request(client, path: str, headers: dict, requests: int) -> float:
    """Microseconds of this process's CPU per request of ``path``."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    start = time.process_time()
    for _ in range(requests):
        client.get(path, headers=headers)
    return (time.process_time() - start) / requests * 1e6


def timed_rounds(bare, client, paths: dict[str, str], headers: dict, requests: int, rounds: int):
    """Each of ``paths`` timed ``rounds`` times, a bare Flask /healthz before each round's, and
    the order reversed every other round, so that a busier machine weighs on both alike."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    bare_times = []
    for round_ in range(rounds):
        bare_times.append(cpu_per_request(bare, "/healthz", HOST, requests))
        for name in paths if round_ % 2 == 0 else reversed(paths):
            times[name].append(cpu_per_request(client, paths[name], headers, requests))
    progress = ", ".join(f"{name} {statistics.median(v):.0f}" for name, v in times.items())
    print(f"  us per request: {progress}", file=sys.stderr, flush=True)
    return times, bare_times


def cpu(package: str, sizes: list[int], requests: int, rounds: int, probes: bool) -> dict:
    bare = importlib.import_module("bare_app").app.test_client()
    client = importlib.import_module(package).create_app().test_client()
    results: dict = {"bare": [], "pages": []}
    runs = []
    if probes:  # the pages that need no account, at no particular table size
        paths = {"GET /healthz": "/healthz", "GET / (anonymous)": "/"}
        runs.append((None, *timed_rounds(bare, client, paths, HOST, requests, rounds)))
    for rows in sizes:
        seeded = seed(package, rows)
        headers = {**HOST, "Authorization": f"Bearer {seeded['reader_token']}"}
        paths = pages(rows, seeded["last_item_id"])
        print(f"  {rows} rows:", file=sys.stderr, flush=True)
        runs.append((rows, *timed_rounds(bare, client, paths, headers, requests, rounds)))
    for rows, times, bare_times in runs:
        results["bare"] += bare_times
        results["pages"] += [{"page": n, "rows": rows, "runs": v} for n, v in times.items()]
    return results


if __name__ == "__main__":
    package, command, *args = sys.argv[1:]
    if command == "seed":
        output = seed(package, int(args[0]))
    else:
        sizes = [int(n) for n in args[0].split(",")]
        output = cpu(package, sizes, int(args[1]), int(args[2]), "probes" in args[3:])
    print(json.dumps(output))
