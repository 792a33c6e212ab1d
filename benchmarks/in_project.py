"""Runs in a rendered project's virtualenv, the project and the bare app on PYTHONPATH, its
production settings in the environment; prints JSON.

    python in_project.py PACKAGE seed ITEMS
        Tables, a reader with ITEMS items and a writer with none, a token for each, and the
        reader's session cookie, from logging in through the web UI's form.
    python in_project.py PACKAGE cpu ROWS[,ROWS...] REQUESTS ROUNDS [probes]
        CPU time (time.process_time) per request of the list pages, v1 (first, middle and last
        page; the first with its total too) and v2 (cursor at the same depths), and of the
        signed-in home page (the reader's newest 20 items), through the test client, for each
        table size; with "probes", of /healthz and the anonymous index page too; and of bare
        Flask's /healthz, the same way.
    python in_project.py PACKAGE instructions SHIM ROWS REQUESTS
        Run under callgrind by ``benchmarks.instructions``: see instructions() below.
"""

from __future__ import annotations

import base64
import ctypes
import importlib
import json
import re
import statistics
import sys
import time

import sqlalchemy as sa

PASSWORD = "correct horse battery staple"
HOST = {"Host": "127.0.0.1"}
# The browser that logs in: Flask-Login remembers the user agent a session was signed in with,
# and a request with another one marks the session not fresh, which sets a new cookie each time.
BROWSER = {**HOST, "User-Agent": "flaskscale-bench"}
# What only the signed-in home page shows: the example's heading and the account's menu.
SIGNED_IN_MARKS = ("Your items", 'action="/logout"')
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
        if rows:  # an executemany of no rows would insert one row of defaults
            db.session.execute(sa.insert(Item), rows)
        tokens = {name: Token.issue(user) for name, user in users.items()}
        db.session.add_all(tokens.values())
        db.session.commit()
        last_id = db.session.scalar(sa.select(sa.func.max(Item.id)))
        result = {f"{name}_token": token.access_token for name, token in tokens.items()}
    cookie = sign_in(app.test_client(), "reader")
    return {
        **result,
        "password": PASSWORD,
        "last_item_id": last_id,
        "browser_headers": {"User-Agent": BROWSER["User-Agent"], "Cookie": cookie},
        "signed_in_marks": SIGNED_IN_MARKS,
    }


def sign_in(client, username: str) -> str:
    """Log ``username`` in through the login form, CSRF token and all, as a browser would; open
    the home page once (it shows, and so drops, the welcome message kept in the session); return
    the session cookie that a browser then sends on every page (``name=value``)."""
    form = client.get("/login", headers=BROWSER)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
    assert form.status_code == 200 and token, (form.status_code, form.text[:300])
    fields = {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
    answer = client.post("/login", data=fields, headers=BROWSER)
    assert answer.status_code == 302 and answer.location == "/", (answer.status_code, answer.text)
    home = client.get("/", headers=BROWSER)
    assert home.status_code == 200 and all(m in home.text for m in SIGNED_IN_MARKS), home.text
    cookie = client.get_cookie("session", domain="127.0.0.1") or client.get_cookie("session")
    return f"{cookie.key}={cookie.value}"


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


def timed_rounds(bare, requests_: dict[str, tuple], requests: int, rounds: int):
    """Each of ``requests_`` (name: client, path, headers) timed ``rounds`` times, a bare Flask
    /healthz before each round's, and the order reversed every other round, so that a busier
    machine weighs on both alike."""
    times: dict[str, list[float]] = {name: [] for name in requests_}
    bare_times = []
    for round_ in range(rounds):
        bare_times.append(cpu_per_request(bare, "/healthz", HOST, requests))
        for name in requests_ if round_ % 2 == 0 else reversed(requests_):
            times[name].append(cpu_per_request(*requests_[name], requests))
    progress = ", ".join(f"{name} {statistics.median(v):.0f}" for name, v in times.items())
    print(f"  us per request: {progress}", file=sys.stderr, flush=True)
    return times, bare_times


def signed_in_home(app, browser_headers: dict) -> tuple:
    """The home page as the browser that logged in sees it: its cookie, sent the way wrk sends
    it (the client keeps no cookies of its own), and checked to be the signed-in page."""
    browser = app.test_client(use_cookies=False)
    headers = {**HOST, **browser_headers}
    page = browser.get("/", headers=headers)
    assert page.status_code == 200 and all(m in page.text for m in SIGNED_IN_MARKS), page.text
    return browser, "/", headers


def cpu(package: str, sizes: list[int], requests: int, rounds: int, probes: bool) -> dict:
    bare = importlib.import_module("bare_app").app.test_client()
    app = importlib.import_module(package).create_app()
    client = app.test_client()
    results: dict = {"bare": [], "pages": []}
    runs = []
    if probes:  # the pages that need no account, at no particular table size
        paths = {"GET /healthz": "/healthz", "GET / (anonymous)": "/"}
        probe_requests = {name: (client, path, HOST) for name, path in paths.items()}
        runs.append((None, *timed_rounds(bare, probe_requests, requests, rounds)))
    for rows in sizes:
        seeded = seed(package, rows)
        headers = {**HOST, "Authorization": f"Bearer {seeded['reader_token']}"}
        paths = pages(rows, seeded["last_item_id"])
        sized = {name: (client, path, headers) for name, path in paths.items()}
        sized["web / signed in"] = signed_in_home(app, seeded["browser_headers"])
        print(f"  {rows} rows:", file=sys.stderr, flush=True)
        runs.append((rows, *timed_rounds(bare, sized, requests, rounds)))
    for rows, times, bare_times in runs:
        results["bare"] += bare_times
        results["pages"] += [{"page": n, "rows": rows, "runs": v} for n, v in times.items()]
    return results


def instructions(package: str, shim: str, rows: int, requests: int) -> dict:
    """Under callgrind (started with instrumentation off): each request of ``REQUESTS`` counted
    alone, ``requests`` times, through ``shim``'s start() and stop(name), which dump the count."""
    counter = ctypes.CDLL(shim)
    bare = importlib.import_module("bare_app").app.test_client()
    app = importlib.import_module(package).create_app()
    client = app.test_client()
    seeded = seed(package, rows)
    token = {**HOST, "Authorization": f"Bearer {seeded['reader_token']}"}
    paths = pages(rows, seeded["last_item_id"])
    counted = {
        "bare /healthz": (bare, "/healthz", HOST),
        "GET /healthz": (client, "/healthz", HOST),
        "GET / (anonymous)": (client, "/", HOST),
        "web / signed in": signed_in_home(app, seeded["browser_headers"]),
        **{name: (client, paths[name], token) for name in ("v1 first", "v2 first", "v2 last")},
    }
    for name, (browser, path, headers) in counted.items():
        for _ in range(20):  # warm: imports, caches, pools
            response = browser.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        counter.start()
        for _ in range(requests):
            browser.get(path, headers=headers)
        counter.stop(name.encode())
    return {"counted": list(counted), "rows": rows, "requests": requests}


if __name__ == "__main__":
    package, command, *args = sys.argv[1:]
    if command == "seed":
        output = seed(package, int(args[0]))
    elif command == "instructions":
        output = instructions(package, args[0], int(args[1]), int(args[2]))
    else:
        sizes = [int(n) for n in args[0].split(",")]
        output = cpu(package, sizes, int(args[1]), int(args[2]), "probes" in args[3:])
    print(json.dumps(output))
