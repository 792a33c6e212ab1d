"""Podman on this kind of machine: configuration, a cached local base image, cleanup.

There is no Docker engine and no reachable image registry, but Debian's podman builds and runs
images as root once a base image exists locally. This module:

- writes a ``containers.conf`` (runc, cgroupfs, explicit ulimits: crun fails on these hosts'
  hybrid cgroups and rlimits) and a ``storage.conf`` keeping images in a persistent cache
  directory (``FLASKSCALE_PODMAN_CACHE``, default ``/var/cache/flaskscale-podman``), so CI runs
  on one machine reuse the base image;
- builds a Debian bookworm root filesystem with ``debootstrap`` from the mirror apt uses, imports
  it, and builds on top a small *test-only* image tagged like the official
  ``docker.io/library/python:3.11-slim`` (Debian bookworm's python3 is 3.11), which provides what
  the generated Dockerfile relies on: ``/usr/local/bin/python``/``python3``/``pip``, venv, the C
  runtime libraries, ``PATH`` and ``LANG``, plus this machine's extra CA certificates so pip
  reaches PyPI through the egress proxy during builds (pip by its pip.conf, uv by
  ``SSL_CERT_FILE``);
- stands in for the official ``ghcr.io/astral-sh/uv:<version>`` image, which the generated
  Dockerfile copies uv from: an image holding only ``/uv`` and ``/uvx``, taken from that
  release's wheel on PyPI.

The generated Dockerfile itself is always built unmodified.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

CACHE = Path(os.environ.get("FLASKSCALE_PODMAN_CACHE", "/var/cache/flaskscale-podman"))
RUNROOT = Path("/run/flaskscale-podman")
# Bump the suffix when ensure_debian_image changes what it builds: the cache is rebuilt.
DEBIAN_IMAGE = "localhost/flaskscale-debian:bookworm-r2"
PYTHON_IMAGE = "localhost/flaskscale-python"
# Debian bookworm's python3: the only python_version the test base image can stand in for.
BASE_PYTHON = "3.11"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Label on every image and container the tests create: strays of killed runs get removed.
LABEL = "flaskscale.test=1"
STRAY_AGE = 3600  # seconds: older labelled containers and images belong to no running test

CONTAINERS_CONF = """\
# Written by the flaskscale test suite (tests/support/podman.py).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{runroot}/libpod"

[network]
network_config_dir = "{cache}/networks"
"""

STORAGE_CONF = """\
# Written by the flaskscale test suite (tests/support/podman.py).
[storage]
driver = "overlay"
graphroot = "{cache}/storage"
runroot = "{runroot}/storage"
"""

# The stand-in for the official python:3.11-slim image (which is Debian bookworm slim with
# CPython under /usr/local). Test-only: the generated project never sees this file.
BASE_CONTAINERFILE = """\
FROM {debian}
COPY ca-certificates/ /usr/local/share/ca-certificates/
COPY pip.conf /etc/pip.conf
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      ca-certificates netbase tzdata python3 python3-venv python3-pip \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \\
 && update-ca-certificates \\
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python3 \\
 && ln -s python3 /usr/local/bin/python \\
 && ln -s /usr/bin/pip3 /usr/local/bin/pip3 \\
 && ln -s pip3 /usr/local/bin/pip \\
 && python --version && pip --version
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
"""

# What the official slim images leave out (debuerreotype's "slimify"): docs, man pages, locales.
DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
"""

# The stand-in for ghcr.io/astral-sh/uv:<version>: uv's two binaries, as the official image has
# them (a scratch image). Test-only.
UV_CONTAINERFILE = """\
FROM scratch
COPY uv uvx /
"""
UV_IMAGE = "ghcr.io/astral-sh/uv"

# pip inside builds: trust the system bundle (which holds this machine's extra CAs) and be as
# patient as pip on the host (PIP_DEFAULT_TIMEOUT).
PIP_CONF = """\
[global]
cert = /etc/ssl/certs/ca-certificates.crt
timeout = 180
"""


class PodmanUnavailable(Exception):
    """Podman cannot build or run containers on this machine (the message says why)."""


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 sources or a classic sources.list)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M) and "security" not in stanza:
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if uris:
                    return uris.group(1)
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if path.is_file():
            for line in path.read_text().splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m:
                    return m.group(1)
    return DEFAULT_MIRROR


def apt_sources() -> str:
    """deb822 sources for the image: the host's bookworm entries (main, updates, security)."""
    mirror = debian_mirror()
    security = mirror.rstrip("/").removesuffix("/debian") + "/debian-security"
    for path in Path("/etc/apt/sources.list.d").glob("*.sources"):
        m = re.search(r"^URIs:\s*(\S*debian-security\S*)", path.read_text(), re.M)
        if m:
            security = m.group(1)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    return (
        f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\n"
        f"Components: main\nSigned-By: {keyring}\n\n"
        f"Types: deb\nURIs: {security}\nSuites: bookworm-security\n"
        f"Components: main\nSigned-By: {keyring}\n"
    )


class Podman:
    """``podman`` with this suite's configuration and cache."""

    def __init__(self, cache: Path = CACHE) -> None:
        self.cache = cache
        self.conf_dir = cache / "conf"
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(self.conf_dir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.conf_dir / "storage.conf"),
        }
        # Settings for the host must not leak into builds or containers.
        for key in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST"):
            self.env.pop(key, None)
        # What this run had to build because the cache lacked it: {image: seconds}.
        self.built: dict[str, float] = {}

    # -- configuration -------------------------------------------------------------------
    def configure(self) -> None:
        """Check the machine can run podman as configured here; raise PodmanUnavailable if not."""
        if shutil.which("podman") is None:
            raise PodmanUnavailable("podman is not installed (apt-get install -y podman runc)")
        if shutil.which("runc") is None:
            raise PodmanUnavailable("runc is not installed (apt-get install -y runc)")
        if os.geteuid() != 0:
            raise PodmanUnavailable("the podman tests run podman as root; run them as root")
        try:
            self.conf_dir.mkdir(parents=True, exist_ok=True)
            RUNROOT.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PodmanUnavailable(f"cannot create podman's directories: {exc}") from exc
        values = {"cache": self.cache, "runroot": RUNROOT}
        _write_if_changed(self.conf_dir / "containers.conf", CONTAINERS_CONF.format(**values))
        _write_if_changed(self.conf_dir / "storage.conf", STORAGE_CONF.format(**values))
        info = self("info", "--format", "json", check=False, timeout=120)
        if info.returncode != 0:
            raise PodmanUnavailable(f"`podman info` fails: {info.stderr.strip()[-1500:]}")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise base-image work between concurrent test runs on one machine."""
        with open(self.cache / "lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- running podman ------------------------------------------------------------------
    def __call__(
        self, *args: str, check: bool = True, timeout: float = 600, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=input is None,
            input=input,
            timeout=timeout,
            check=False,
        )
        if isinstance(proc.stdout, bytes):
            proc = subprocess.CompletedProcess(
                proc.args,
                proc.returncode,
                proc.stdout.decode(errors="replace"),
                proc.stderr.decode(errors="replace"),
            )
        if check and proc.returncode != 0:
            raise PodmanError(args, proc)
        return proc

    def image_exists(self, ref: str) -> bool:
        return self("image", "exists", ref, check=False).returncode == 0

    def can_run_containers(self) -> None:
        """Start a trivial container from the Debian image; raise PodmanUnavailable if it fails."""
        proc = self("run", "--rm", "--network", "none", DEBIAN_IMAGE, "true", check=False)
        if proc.returncode != 0:
            raise PodmanUnavailable(f"podman cannot start a container: {proc.stderr.strip()}")

    # -- the cached base images ----------------------------------------------------------
    def ensure_debian_image(self) -> None:
        """``DEBIAN_IMAGE``, from debootstrap (one to three minutes; cached)."""
        if self.image_exists(DEBIAN_IMAGE):
            return
        watch = Stopwatch()
        if shutil.which("debootstrap") is None:
            raise PodmanUnavailable(
                "the base image is not cached and debootstrap is not installed "
                "(apt-get install -y debootstrap)"
            )
        for stale in self.cache.glob("rootfs-*"):  # left by an interrupted run
            shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=self.cache, prefix="rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                raise PodmanUnavailable(
                    "debootstrap could not build the Debian base: " + proc.stdout[-3000:]
                )
            _slimify(rootfs)
            (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
            (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(apt_sources())
            tar = subprocess.run(
                ["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True
            )
            self(
                "import",
                "--change",
                'CMD ["bash"]',
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "-",
                DEBIAN_IMAGE,
                input=tar.stdout,
            )
        self.built[DEBIAN_IMAGE] = watch.seconds

    def ensure_python_base(self, tags: Sequence[str]) -> str:
        """A test-only stand-in for ``python:3.11-slim`` under every name in ``tags``.

        Rebuilt when its recipe or this machine's extra CA certificates change.
        """
        certs = sorted(EXTRA_CA_DIR.rglob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
        recipe = hashlib.sha256()
        recipe.update(BASE_CONTAINERFILE.encode() + PIP_CONF.encode())
        for cert in certs:
            recipe.update(cert.name.encode() + cert.read_bytes())
        recipe.update(DEBIAN_IMAGE.encode())
        primary = f"{PYTHON_IMAGE}:{BASE_PYTHON}-{recipe.hexdigest()[:16]}"
        if not self.image_exists(primary):
            self._remove_stale_bases()
            self.ensure_debian_image()
            watch = Stopwatch()
            with tempfile.TemporaryDirectory(prefix="flaskscale-base-") as tmp:
                context = Path(tmp)
                (context / "ca-certificates").mkdir()
                for cert in certs:
                    shutil.copy(cert, context / "ca-certificates" / cert.name)
                (context / "pip.conf").write_text(PIP_CONF)
                (context / "Containerfile").write_text(
                    BASE_CONTAINERFILE.format(debian=DEBIAN_IMAGE)
                )
                self(
                    "build",
                    "--pull=never",
                    "--format",
                    "docker",
                    "--layers=false",
                    "-t",
                    primary,
                    str(context),
                    timeout=900,
                )
            self.built[primary] = watch.seconds
        for tag in tags:
            self("tag", primary, tag)
        return primary

    def ensure_uv_image(self, version: str) -> str:
        """A test-only stand-in for ``ghcr.io/astral-sh/uv:<version>``, from uv's wheel."""
        ref = f"{UV_IMAGE}:{version}"
        if self.image_exists(ref):
            return ref
        watch = Stopwatch()
        with tempfile.TemporaryDirectory(prefix="flaskscale-uv-") as tmp:
            context = Path(tmp)
            wheel_platform = f"manylinux_2_17_{platform.machine()}"
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
                 ":all:", "--platform", wheel_platform, "--dest", str(context), f"uv=={version}"],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            wheels = list(context.glob("uv-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise PodmanUnavailable(f"uv {version}'s wheel: {proc.stderr.strip()[-1500:]}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                for name in ("uv", "uvx"):
                    member = f"uv-{version}.data/scripts/{name}"
                    (context / name).write_bytes(wheel.read(member))
                    (context / name).chmod(0o755)
            (context / "Containerfile").write_text(UV_CONTAINERFILE)
            self("build", "--pull=never", "--format", "docker", "--layers=false",
                 "-t", ref, str(context), timeout=600)  # fmt: skip
        self.built[ref] = watch.seconds
        return ref

    # -- cleanup -------------------------------------------------------------------------
    def remove_containers(self, names: Sequence[str]) -> None:
        if names:
            self("rm", "--force", "--time", "0", "--ignore", *names, check=False, timeout=120)

    def remove_images(self, refs: Sequence[str]) -> None:
        if refs:
            self("rmi", "--force", "--ignore", *refs, check=False, timeout=120)

    def remove_strays(self) -> None:
        """Labelled containers and images left behind by test runs that were killed."""
        cutoff = time.time() - STRAY_AGE
        # Pods that `podman kube play` started (support/kube.py labels them): their containers
        # with them.
        proc = self("pod", "ps", "--filter", f"label={LABEL}", "--format", "json", check=False)
        old = [
            pod["Id"] for pod in json.loads(proc.stdout or "[]") if _epoch(pod["Created"]) < cutoff
        ]
        if old:
            self("pod", "rm", "--force", "--ignore", *old, check=False, timeout=300)
        proc = self("ps", "--all", "--filter", f"label={LABEL}", "--format", "json", check=False)
        old = [c["Id"] for c in json.loads(proc.stdout or "[]") if c.get("Created", 0) < cutoff]
        self.remove_containers(old)
        proc = self("images", "--filter", f"label={LABEL}", "--format", "json", check=False)
        old = [i["Id"] for i in json.loads(proc.stdout or "[]") if i.get("Created", 0) < cutoff]
        self.remove_images(old)

    def _remove_stale_bases(self) -> None:
        """Cached base images of older recipes (their tags included), before building anew."""
        listing = self("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=False)
        stale = set()
        for line in listing.stdout.splitlines():
            name, _, image_id = line.partition(" ")
            if name.startswith(PYTHON_IMAGE + ":") or (
                name.startswith("localhost/flaskscale-debian:") and name != DEBIAN_IMAGE
            ):
                stale.add(image_id)
        if stale:
            self("rmi", "--force", *sorted(stale), check=False, timeout=120)


class PodmanError(AssertionError):
    def __init__(self, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"podman {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
        self.proc = proc


def python_base_tags(dockerfile: Path, python_version: str = BASE_PYTHON) -> list[str]:
    """Every official python image the Dockerfile's ``FROM`` lines name, fully qualified.

    ``ARG`` defaults declared before the first ``FROM`` are substituted, as a builder would.
    """
    args: dict[str, str] = {}
    tags: list[str] = []
    for raw in _logical_lines(dockerfile.read_text()):
        words = raw.split()
        if not words:
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and not tags and len(words) > 1 and "=" in words[1]:
            name, _, value = words[1].partition("=")
            args[name] = value.strip("\"'")
        elif instruction == "FROM":
            image = next(w for w in words[1:] if not w.startswith("--"))
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
            if "$" in image:
                continue
            name = image.split("@")[0]
            repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
            short = repo.removeprefix("docker.io/").removeprefix("library/")
            if short == "python" and tag.startswith(python_version):
                tags.append(f"docker.io/library/python:{tag}")
    return sorted(set(tags))


def uv_image_versions(dockerfile: Path) -> list[str]:
    """The versions of the official uv image the Dockerfile copies uv from."""
    pattern = rf"--from={re.escape(UV_IMAGE)}:(\S+)"
    return sorted({m[1] for line in _logical_lines(dockerfile.read_text())
                   if (m := re.search(pattern, line))})  # fmt: skip


def _logical_lines(text: str) -> Iterator[str]:
    line = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not line:
            continue
        if stripped.endswith("\\"):
            line += stripped[:-1] + " "
            continue
        yield line + stripped
        line = ""
    if line:
        yield line


def _epoch(timestamp: str) -> float:
    """Seconds since the epoch of podman's RFC 3339 UTC time (nanoseconds dropped)."""
    return datetime.fromisoformat(timestamp[:19]).replace(tzinfo=UTC).timestamp()


def _slimify(rootfs: Path) -> None:
    """Trim a debootstrapped tree the way the official slim images are trimmed."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()
    for folder in ("usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian"):
        shutil.rmtree(rootfs / folder, ignore_errors=True)
    for path in (rootfs / "usr/share/locale").glob("*"):
        if path.name != "locale.alias":
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    for path in (rootfs / "usr/share/doc").rglob("*"):
        if path.is_file() and path.name != "copyright":
            path.unlink()
    (rootfs / "etc/dpkg/dpkg.cfg.d/slim").write_text(DPKG_SLIM)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start


# --------------------------------------------------------------------------- summary plugin
# Registered in conftest.py (pytest_plugins): the measurements appear at the end of the run,
# also under pytest-xdist (user_properties travel with the reports).

_METRIC = "container-image"
_metrics: dict[str, str] = {}


def record_metric(record_property, name: str, value: str) -> None:
    """Show ``name: value`` in the "container image (podman)" section of the summary."""
    print(f"container image: {name}: {value}")
    record_property(_METRIC, json.dumps([name, value]))


def pytest_runtest_logreport(report) -> None:
    for key, value in getattr(report, "user_properties", ()):
        if key == _METRIC:
            name, text = json.loads(value)
            _metrics[name] = text


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _metrics or hasattr(config, "workerinput"):
        return
    terminalreporter.section("container image (podman)")
    width = max(len(name) for name in _metrics)
    for name, value in _metrics.items():
        terminalreporter.write_line(f"{name:<{width}}  {value}")
