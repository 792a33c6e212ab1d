"""A PostgreSQL primary with a streaming replica, and PgBouncer before the primary, of a test's
own: on free loopback ports, in a directory of the test's, stopped and removed afterwards. The
machine's own cluster is left alone.

PostgreSQL's programs refuse to run as root and PgBouncer should not: they run as the
``postgres`` user (``runuser``) on directories it owns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from support.postgres import fetch
from support.processes import Process, wait_for
from support.services import free_port, missing, require_command

HOST = "127.0.0.1"
USER = "postgres"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (``initdb``, ``pg_ctl``, ``pg_basebackup``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        missing("PostgreSQL's server programs (initdb) are not installed")
    return found[-1].parent


def as_postgres(cmd: list[str], timeout: int = 120) -> str:
    proc = subprocess.run(
        ["runuser", "-u", USER, "--", *cmd], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


class Server:
    """One PostgreSQL server: its data directory, port and log."""

    def __init__(self, root: Path, name: str) -> None:
        self.name, self.data, self.log = name, root / name, root / f"{name}.log"
        self.port = free_port()

    def start(self) -> None:
        pg_ctl = str(postgres_bin() / "pg_ctl")
        as_postgres([pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``fast``: sessions are ended, as by an administrator); no error if stopped."""
        pg_ctl = str(postgres_bin() / "pg_ctl")
        subprocess.run(
            ["runuser", "-u", USER, "--", pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )

    def configure(self, settings: dict[str, str]) -> None:
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={HOST} port={self.port} user={USER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql://{USER}@{HOST}:{self.port}/{dbname}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Cluster:
    """A primary and one streaming replica (``pg_basebackup -R``), both with pg_stat_statements."""

    def __init__(self, replica_settings: dict[str, str] | None = None) -> None:
        require_command("runuser")
        # Not under pytest's temporary directory, which only root may enter.
        self.root = Path(tempfile.mkdtemp(prefix="flaskscale-pg-"))
        shutil.chown(self.root, USER, USER)
        self.primary = Server(self.root, "primary")
        self.replica = Server(self.root, "replica")
        self.replica_settings = replica_settings or {}

    def start(self) -> None:
        bin_dir = postgres_bin()
        initdb = [str(bin_dir / "initdb"), "-D", str(self.primary.data), "-U", USER]
        as_postgres([*initdb, "--auth=trust", "--no-sync", "--no-instructions"])
        common = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.root),
            "shared_preload_libraries": "pg_stat_statements",
            "fsync": "off",  # a throwaway cluster: speed over durability
        }
        self.primary.configure({**common, "port": str(self.primary.port)})
        self.primary.start()
        source = ["-h", HOST, "-p", str(self.primary.port), "-U", USER]
        backup = ["-D", str(self.replica.data), "-R", "-X", "stream", "--no-sync"]
        as_postgres([str(bin_dir / "pg_basebackup"), *source, *backup])
        self.replica.configure({"port": str(self.replica.port), **self.replica_settings})
        self.replica.start()

    def replayed(self) -> Callable[[], bool]:
        """Whether the replica has replayed all the primary has written until now (a predicate)."""
        written = fetch("SELECT pg_current_wal_lsn()::text", self.primary.dsn())[0][0]
        check = f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"
        return lambda: fetch(check, self.replica.dsn())[0][0]

    def stop(self) -> None:
        for server in (self.replica, self.primary):
            server.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def diagnostics(self) -> str:
        return "".join(
            f"--- {server.name}.log\n{server.output()[-3000:]}\n"
            for server in (self.primary, self.replica)
        )


class PgBouncer:
    """Debian's PgBouncer in transaction pooling before the primary, with few server connections."""

    def __init__(self, cluster: Cluster, pool_size: int = 4) -> None:
        self.command = require_command("pgbouncer")
        server = cluster.primary
        self.dir = cluster.root / "pgbouncer"
        self.dir.mkdir()
        self.port = free_port()
        (self.dir / "userlist.txt").write_text(f'"{USER}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={HOST} port={server.port}\n\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\nadmin_users = {USER}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
        )
        shutil.chown(self.dir, USER, USER)
        for path in self.dir.iterdir():
            shutil.chown(path, USER, USER)
        self.process = Process(
            "pgbouncer",
            ["runuser", "-u", USER, "--", self.command, str(self.dir / "pgbouncer.ini")],
            self.dir,
            os.environ,
            self.dir / "pgbouncer.log",
        )

    def start(self) -> None:
        import psycopg

        self.process.start()

        def accepts() -> bool:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_for(accepts, 30, lambda: f"PgBouncer did not start:\n{self.process.output()}")

    def stop(self) -> None:
        self.process.stop()

    def dsn(self, dbname: str) -> str:
        return f"host={HOST} port={self.port} user={USER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql://{USER}@{HOST}:{self.port}/{dbname}"

    def stats(self, dbname: str) -> dict[str, int]:
        """``SHOW STATS`` of ``dbname`` from the admin console (which takes simple queries only)."""
        import psycopg

        with psycopg.connect(self.dsn("pgbouncer"), autocommit=True) as conn:
            result = conn.pgconn.exec_(b"SHOW STATS")
            columns = [result.fname(i).decode() for i in range(result.nfields)]
            for row in range(result.ntuples):
                values = [(result.get_value(row, i) or b"").decode() for i in range(result.nfields)]
                stats = dict(zip(columns, values, strict=True))
                if stats["database"] == dbname:
                    return {k: int(v) for k, v in stats.items() if v.isdigit()}
        return {}
