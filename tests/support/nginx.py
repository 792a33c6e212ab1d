"""The generated nginx config, run by a test: its upstreams and paths pointed at the test's."""

from __future__ import annotations

import re
from pathlib import Path

HOST = "127.0.0.1"


def local_config(
    project: Path, root: Path, upstreams: list[int], listen: int, *, show_upstream: bool = False
) -> Path:
    """``root/nginx.conf``: ``deploy/nginx/nginx.conf`` balancing over ``upstreams`` on loopback.

    Logs and temporary files go to ``root``, static files come from the project; with
    ``show_upstream`` every response names its instance in ``X-Upstream``.
    """
    original = text = (project / "deploy" / "nginx" / "nginx.conf").read_text()
    servers = "\n        ".join(f"server {HOST}:{port}\\1;" for port in upstreams)
    replacements = [
        (r"server web:8000([^;]*);", servers),
        (r"listen \d+;", f"listen {HOST}:{listen};"),
        (r"pid [^;]+;", f"pid {root / 'nginx.pid'};"),
        (r"error_log [^;]+;", f"error_log {root / 'error.log'} info;"),
        (r"access_log \S+ (\w+);", f"access_log {root / 'access.log'} \\1;"),
        (r"(\w+_temp_path) /tmp/", rf"\1 {root}/"),
    ]
    if show_upstream:
        header = r"\1\n        add_header X-Upstream $upstream_addr always;"
        replacements.append((r"(?m)^(\s*server_name _;)", header))
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        assert count, f"nginx.conf changed: {pattern!r} not found"
    text = re.sub(r"root /srv/[^;]+;", f"root {project};", text)  # static files, with a web UI
    for path in re.findall(r"/tmp/[\w./-]+", original):
        assert path not in text, f"nginx.conf writes to {path}, which this test does not redirect"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # nginx's workers run as an unprivileged user when the tests run as root
    conf = root / "nginx.conf"
    conf.write_text(text)
    return conf
