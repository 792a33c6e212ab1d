"""The results as a Markdown table, a JSON file and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import fanout


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"Benchmarks, {meta['mode']} mode: `{meta['command']}`  ",
        f"{meta['date']}, {meta['cores']} cores, load average {meta['load_before']} before and "
        f"{meta['load_after']} after; wrk {meta['wrk']}, {meta['seconds']} s a run, "
        f"{meta['rounds']} rounds. Ratios compare runs of the same round, not figures of "
        "different machines.",
    ]
    if results["http"]:
        lines += [
            "",
            "| request | via | bare Flask /healthz, req/s | generated, req/s | ratio to bare "
            "| ratio, best runs | server CPU a request, bare / generated, us "
            "| p50 ms | p99 ms | failed |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| `{r['label']}` | {r['via']} | {r['bare_rps']:.0f} | {r['rps']:.0f} "
            f"| {r['ratio']:.2f}x | {r['best_ratio']:.2f}x "
            f"| {r['bare_server_cpu_us']:.0f} / {r['server_cpu_us']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['failed']} |"
            for r in results["http"]
        ]
    if results["cpu"]:
        lines += [
            "",
            "| request, in process (list pages, 20 a page: API with a token, web signed in) "
            "| database | rows "
            "| CPU us per request | cost, x bare /healthz | x same page at smallest table |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [cpu_line(r) for r in results["cpu"]]
        bare = {r["database"]: r["bare_us"] for r in results["cpu"]}
        lines.append(
            "\nBare Flask /healthz in process: "
            + ", ".join(f"{us:.0f} us of CPU a request ({db} run)" for db, us in bare.items())
        )
    if results.get("celery"):
        lines += ["", *celery_lines(results["celery"])]
    if results["commands"]:
        lines += [
            "",
            "| command | flaskscale, s | copier, s | ratio |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| `{r['label']}` | {r['flaskscale_s']:.3f} | {r['copier_s']:.3f} "
            f"| {r['ratio']:.2f}x |"
            for r in results["commands"]
        ]
    if results.get("socketio"):
        lines += ["", *fanout_lines(results["socketio"])]
    if results["skipped"]:
        lines += ["", "Not measured in this run: " + "; ".join(results["skipped"]) + "."]
    if results["not_built"]:
        lines += ["", "Not in the suite yet: " + "; ".join(results["not_built"]) + "."]
    return "\n".join(lines) + "\n"


def fanout_lines(r: dict) -> list[str]:
    """The fan-out row: median of the rounds' p50, p99 and maximum, and the clients missed."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    ratio = f"{r['p99_vs_bare']:.2f}x" if r.get("p99_vs_bare") else "-"
    client = r["client_cpu_us_per_message"]
    return [
        f"| Socket.IO: one event to {r['clients']:,} clients, 2 gevent instances, Redis queue "
        "| bare p50 / p99 / max ms | generated p50 / p99 / max ms | p99, x bare | missed, bare "
        "/ generated |",
        "|---|---:|---:|---:|---:|",
        f"| `push_to_user()` from a third process (bare: broadcast) "
        f"| {ms(r['bare_p50_ms'])} / {ms(r['bare_p99_ms'])} / {ms(r['bare_max_ms'])} "
        f"| {ms(r['p50_ms'])} / {ms(r['p99_ms'])} / {ms(r['max_ms'])} | {ratio} "
        f"| {r['bare_missed']} / {r['missed']} |",
        "",
        f"Fan-out clients: {r['connected']:,} connected over both sides, in "
        f"{fanout.CLIENT_PROCESSES} processes, "
        + (f"{client:.0f} us of their CPU a message received." if client else "none received.")
        + " The instances' workers (CPU time, so less sensitive to a busy machine): "
        f"bare {ms(r.get('bare_server_cpu_us_per_message'))}, generated "
        f"{ms(r.get('server_cpu_us_per_message'))} us of CPU a client reached.",
    ]


def celery_lines(r: dict) -> list[str]:
    """The round trip, both sides: latency of a job, and jobs per second over a batch."""
    lines = [
        f"| job ({r['concurrency']} at once, status polled every {r['poll_ms']:g} ms) "
        "| jobs | p50 ms | p99 ms | max ms | polls a job | jobs/s | ratio to bare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side, label in (("bare", r["bare_label"]), ("generated", r["label"])):
        s = r[side]
        ratio = f"{r['ratio']:.2f}x" if side == "generated" else "1.00x"
        lines.append(
            f"| `{label}` | {s['jobs']} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} "
            f"| {s['max_ms']:.1f} | {s['polls_per_job']:.1f} | {s['jobs_per_s']:.1f} | {ratio} |"
        )
    lines.append(
        f"\nWorkers: the project's `{r['worker']}` and bare Celery's `{r['bare_worker']}`. "
        "A job is seen done up to one poll interval and one poll's round trip after it is; "
        "p99 of this many jobs is close to their slowest."
    )
    return lines


def cpu_line(r: dict) -> str:
    """A page at a table size; a probe (no table size) gets dashes instead."""
    sized = r["rows"] is not None
    database, rows = (r["database"], f"{r['rows']:,}") if sized else ("-", "-")
    growth = f"{r['vs_smallest']:.2f}x" if sized else "-"
    return (
        f"| `{r['page']}` | {database} | {rows} | {r['us']:.0f} "
        f"| {r['cost_vs_bare']:.1f}x | {growth} |"
    )


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    celery, sockets = results.get("celery"), results.get("socketio")
    panels = 2 + bool(celery) + bool(sockets)
    fig, (bars, curves, *extra) = plt.subplots(1, panels, figsize=(7 * panels, 6))
    http = results["http"]
    labels = [f"{r['label']} ({r['via']})" for r in http]
    positions = range(len(http))
    bars.barh(
        [p + 0.2 for p in positions],
        [r["bare_rps"] for r in http],
        0.4,
        label="bare Flask /healthz",
    )
    bars.barh([p - 0.2 for p in positions], [r["rps"] for r in http], 0.4, label="generated")
    bars.set_yticks(list(positions), labels, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel("requests per second (median)")
    bars.set_title("HTTP, gunicorn -w 2 -k gthread --threads 4")
    bars.legend(fontsize=8)

    lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in (r for r in results["cpu"] if r["rows"] is not None):
        lines.setdefault((r["database"], r["page"]), []).append((r["rows"], r["us"]))
    colours = {page: f"C{n}" for n, page in enumerate(dict.fromkeys(p for _, p in lines))}
    for (database, page), points in lines.items():
        style = "-" if database == "sqlite" else "--"
        curves.plot(
            *zip(*sorted(points), strict=True),
            style,
            color=colours[page],
            marker="o",
            label=f"{page} ({database})",
        )
    if lines:
        curves.set_xscale("log")
        curves.legend(fontsize=7)
    curves.set_xlabel("rows in the table")
    curves.set_ylabel("CPU us per request (median)")
    curves.set_title("List pages, in process")
    if celery:
        celery_chart(extra.pop(0), celery)
    if sockets:
        fanout_chart(extra.pop(0), sockets)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fanout_chart(axes, r: dict) -> None:
    """Each round's p50 and p99, bare and generated."""
    axes.set_title("Socket.IO fan-out, delivery latency")
    for side, prefix, colour in (("bare", "bare_", "C0"), ("generated", "", "C1")):
        for figure, style in (("p50_ms", "o--"), ("p99_ms", "o-")):
            values = [run[figure] for run in r[prefix + "runs"]]
            axes.plot(
                range(1, len(values) + 1),
                values,
                style,
                color=colour,
                label=f"{side} {figure[:3]}",
            )
    axes.set_xticks(range(1, len(r["runs"]) + 1))
    axes.set_xlabel(f"round ({r['clients']:,} clients a side)")
    axes.set_ylabel("ms from send to receipt")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)


def celery_chart(axes, r: dict) -> None:
    """The round trip's latency percentiles, bare and generated side by side."""
    figures = ("p50_ms", "p99_ms", "max_ms")
    positions = range(len(figures))
    for offset, side in ((-0.2, "bare"), (0.2, "generated")):
        axes.bar(
            [p + offset for p in positions],
            [r[side][f] for f in figures],
            0.4,
            label=r["bare_label"] if side == "bare" else "generated",
        )
    axes.set_xticks(list(positions), ["p50", "p99", "max"])
    axes.set_ylabel("ms from the 202 to the result")
    axes.set_title(f"Celery round trip, {r['concurrency']} jobs at once")
    axes.legend(fontsize=8)


def write(results: dict, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": directory / "results.md",
        "json": directory / "results.json",
        "chart": directory / "results.png",
    }
    paths["markdown"].write_text(markdown(results))
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    chart(results, paths["chart"])
    return paths
