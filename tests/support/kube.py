"""The generated Kubernetes manifests, run with Debian's podman 4.3 (``podman kube play``).

``kubectl kustomize`` renders an overlay exactly as ``kubectl apply -k`` would send it; then
``for_podman`` adapts, visibly, only what podman 4.3 cannot read or what running the pods on
this machine's network needs (each adaptation says why, with podman's own error where it has
one). Everything else (commands, environment, securityContext, resources, volumes) is played
as rendered.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from support.commands import run
from support.podman import LABEL, Podman
from support.validators import tool


def render_overlay(overlay: Path, values: dict[str, str]) -> list[dict]:
    """``kubectl kustomize overlay`` with ``secrets.env`` filled in as a user would.

    Every key of ``secrets.env.example`` gets its value from ``values``: a secret the
    manifests gain and the tests do not set fails here, not as a crash inside a pod.
    """
    example = (overlay / "secrets.env.example").read_text()
    keys = re.findall(r"(?m)^(\w+)=", example)
    assert set(keys) == set(values), f"secrets.env.example holds {keys}, the test sets {values}"
    (overlay / "secrets.env").write_text("".join(f"{key}={values[key]}\n" for key in keys))
    rendered = run([tool("kubectl"), "kustomize", str(overlay)], cwd=overlay).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(docs: list[dict], kind: str, suffix: str) -> dict:
    """The one ``kind`` document whose (prefixed) name ends with ``suffix``."""
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return doc


def for_podman(
    docs: list[dict], workloads: list[dict], image: str, port: int, run_id: str
) -> list[dict]:
    """``workloads`` (Deployments, or Pods made from a Job) and their settings, adapted to
    podman 4.3 on this machine's network."""
    # The settings the pods read (podman skips the Services, Ingress, HPAs... it cannot play).
    played = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    for secret in (doc for doc in docs if doc["kind"] == "Secret"):
        # podman 4.3 stores a Secret document as a podman secret (in YAML), then cannot read
        # it back for `envFrom: secretRef`: "secret <name> is not valid JSON: invalid
        # character 'a' looking for beginning of value". The same keys as a ConfigMap.
        played.append(secret_as_config_map(secret))
    for workload in workloads:
        workload = copy.deepcopy(workload)
        # Pod names are global on the machine: a run of its own per test run.
        workload["metadata"]["name"] += f"-{run_id}"
        # The test suite's label: a run killed before `kube down` leaves pods that a later one
        # removes (support.podman.Podman.remove_strays).
        key, _, value = LABEL.partition("=")
        template = workload if workload["kind"] == "Pod" else workload["spec"]["template"]
        template["metadata"].setdefault("labels", {})[key] = value
        spec = pod_spec(workload)
        # PostgreSQL and Redis listen on the host's 127.0.0.1 only, which podman's bridge
        # network cannot reach: the pods share the host's network.
        spec["hostNetwork"] = True
        # podman 4.3 makes an emptyDir a volume named like it ("tmp"), which every pod naming
        # one alike shares, other test runs' included; Kubernetes gives each pod its own.
        own = {v["name"]: f"{v['name']}-{pod_name(workload)}" for v in spec.get("volumes", [])
               if "emptyDir" in v}  # fmt: skip
        for volume in spec.get("volumes", []):
            volume["name"] = own.get(volume["name"], volume["name"])
        for container in spec["containers"]:
            # The image built from the generated Dockerfile, which no registry holds.
            container["image"] = image
            container["imagePullPolicy"] = "Never"
            # On the host's network gunicorn listens on a free port, not on the image's 8000
            # (PORT, which gunicorn.conf.py reads).
            container.setdefault("env", []).append({"name": "PORT", "value": str(port)})
            # podman 4.3 publishes every containerPort on the host, which host networking
            # refuses: "PortMappings can only be used with Bridge or slirp4netns networking".
            names = {p["name"]: port for p in container.pop("ports", []) if "name" in p}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                check = container.get(probe, {}).get("httpGet")
                if check and isinstance(check["port"], str):
                    # podman 4.3 reads a named port as 0 (its health check becomes
                    # `curl -f http://localhost:0/healthz`): the number gunicorn listens on.
                    check["port"] = names[check["port"]]
            # podman 4.3 passes `$(NAME)` in a command on as it is (celery then refuses
            # "--concurrency $(CELERY_CONCURRENCY)"); Kubernetes puts the variable's value there.
            if "command" in container:
                container["command"] = [expand(word, container) for word in container["command"]]
            for mount in container.get("volumeMounts", []):
                mount["name"] = own.get(mount["name"], mount["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    source["configMapRef"] = source.pop("secretRef")
        played.append(workload)
    return played


def expand(word: str, container: dict) -> str:
    """Kubernetes' ``$(NAME)`` substitution, from the container's own ``env`` values."""
    values = {var["name"]: var["value"] for var in container.get("env", []) if "value" in var}
    return re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), word)


def secret_as_config_map(secret: dict) -> dict:
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": secret["metadata"], "data": data}


def job_as_pod(job: dict) -> dict:
    """A Job's pod, as a Pod: podman 4.3 plays no Job ("YAML document does not contain any
    supported kube kind")."""
    template = copy.deepcopy(job["spec"]["template"])
    # The Job's controller retries a failed pod (backoffLimit); alone, the first failure shows.
    template["spec"]["restartPolicy"] = "Never"
    metadata = {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def pod_spec(workload: dict) -> dict:
    return workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]


def pod_name(workload: dict) -> str:
    """The name podman gives the (single) pod of a Deployment or Pod."""
    name = workload["metadata"]["name"]
    return name if workload["kind"] == "Pod" else f"{name}-pod-0"


def container_name(workload: dict, container: str) -> str:
    """podman names a pod's container ``<pod>-<container>``."""
    return f"{pod_name(workload)}-{container}"


@contextmanager
def played(podman: Podman, path: Path, docs: list[dict]) -> Iterator[None]:
    """``podman kube play`` the documents (written to ``path``); remove their pods after,
    whatever happened (a play that fails halfway may have created some)."""
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    try:
        podman("kube", "play", str(path), timeout=300)
        yield
    finally:
        podman("kube", "down", str(path), check=False, timeout=600)
        # kube down leaves the (empty) pod of a container podman was restarting meanwhile.
        pods = [pod_name(doc) for doc in docs if doc["kind"] in ("Pod", "Deployment")]
        podman("pod", "rm", "--force", "--ignore", *pods, check=False, timeout=300)
