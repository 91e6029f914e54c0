"""The local node runs real workloads (`make cluster-test`, against `make cluster CLUSTER=local`).

- a restricted pod (non-root, read-only root filesystem, no capabilities, seccomp RuntimeDefault)
  from a Debian bookworm image (mmdebstrap minbase + busybox, buildah, ctr import) runs to
  completion in a namespace that enforces Pod Security "restricted", and the kernel shows the
  restrictions (UID, CapEff, Seccomp mode, a refused write to /);
- a Deployment behind a ClusterIP Service answers another pod by the Service's DNS names;
- a PVC of the default StorageClass binds and a pod writes to it as UID 10001 (the file on the
  host belongs to 10001);
- kubectl logs, exec and port-forward reach the pod.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tools.cluster import images, node
from tools.cluster.layout import Layout

IMAGE = f"{images.REGISTRY}/bookworm-busybox:test"
UID = 10001
TIMEOUT = 180.0

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "fsGroup": UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@pytest.fixture(scope="module")
def image(layout: Layout) -> str:
    """Debian bookworm minbase + busybox (wget, httpd): built once (cached), imported every run."""
    built = images.debian_image(layout, IMAGE, packages=("busybox",))
    images.import_images(layout, [built])
    return built.name


def kubectl(layout: Layout, *args: str, stdin: str | None = None, timeout: float = 120.0) -> str:
    return node.kubectl(layout, *args, stdin=stdin, timeout=timeout)


def apply(layout: Layout, namespace: str, *manifests: dict) -> None:
    kubectl(layout, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))


@pytest.fixture(scope="module")
def namespace(layout: Layout) -> Iterator[str]:
    name = f"node-test-{secrets.token_hex(3)}"
    kubectl(layout, "create", "namespace", name)
    kubectl(layout, "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl(layout, "delete", "namespace", name, "--wait=true", timeout=300)


def restricted_pod(name: str, image: str, command: str, **spec) -> dict:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
        "securityContext": RESTRICTED_CONTAINER,
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {"app": name})},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,  # sh and busybox httpd as PID 1 ignore SIGTERM
            "securityContext": RESTRICTED_POD,
            "containers": [container],
            **spec,
        },
    }


def wait_phase(layout: Layout, namespace: str, pod: str, phases: set[str], timeout: float = TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = kubectl(layout, "-n", namespace, "get", "pod", pod, "-o", "jsonpath={.status.phase}")
        if phase in phases:
            return phase
        if phase == "Failed":
            break
        time.sleep(1)
    described = kubectl(layout, "-n", namespace, "describe", "pod", pod)
    raise AssertionError(f"pod {pod} is {phase!r}, not {phases}:\n{described[-3000:]}")


def test_restricted_pod_runs_to_completion(layout: Layout, namespace: str, image: str) -> None:
    command = (
        "id -u; id -g; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
        "if touch /written 2>/dev/null; then echo ROOT-WRITABLE; else echo root-read-only; fi; "
        "cat /etc/debian_version"
    )
    apply(layout, namespace, restricted_pod("restricted", image, command))
    assert wait_phase(layout, namespace, "restricted", {"Succeeded"}) == "Succeeded"
    lines = kubectl(layout, "-n", namespace, "logs", "restricted").split()
    assert lines[:2] == [str(UID), str(UID)]
    status = dict(zip(lines[2:8:2], lines[3:8:2], strict=True))
    assert status == {"CapEff:": "0000000000000000", "NoNewPrivs:": "1", "Seccomp:": "2"}  # 2 = filter mode
    assert lines[8] == "root-read-only"
    assert lines[9].startswith("12.")  # bookworm


def test_privileged_pod_is_refused_by_pod_security(layout: Layout, namespace: str, image: str) -> None:
    pod = restricted_pod("as-root", image, "true")
    pod["spec"]["securityContext"] = {"runAsUser": 0}
    result = subprocess.run(
        [str(node.kubectl_path()), f"--kubeconfig={layout.admin_kubeconfig}", "-n", namespace, "apply", "-f", "-"],
        input=yaml.safe_dump(pod),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted' in result.stderr


@pytest.fixture(scope="module")
def web(layout: Layout, namespace: str, image: str) -> str:
    """Deployment `web` (busybox httpd on 8080, restricted) behind ClusterIP Service `web` port 80."""
    serve = (
        'mkdir -p /tmp/www && echo "hello from $(hostname)" > /tmp/www/index.html && '
        "echo serving-on-8080 && exec busybox httpd -f -v -p 8080 -h /tmp/www"
    )
    pod = restricted_pod(
        "web",
        image,
        serve,
        container={
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        },
        volumes=[{"name": "tmp", "emptyDir": {}}],
    )
    pod["spec"]["restartPolicy"] = "Always"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(layout, namespace, deployment, service)
    kubectl(
        layout, "-n", namespace, "rollout", "status", "deployment/web", f"--timeout={int(TIMEOUT)}s", timeout=TIMEOUT
    )
    pods = json.loads(kubectl(layout, "-n", namespace, "get", "pods", "-l", "app=web", "-o", "json"))
    return pods["items"][0]["metadata"]["name"]


def test_service_answers_by_dns_name_from_another_pod(layout: Layout, namespace: str, image: str, web: str) -> None:
    fqdn = f"web.{namespace}.svc.cluster.local"
    # timeout(1), not wget -T: Debian's busybox 1.35.0 wget segfaults with -T (docs/cluster.md)
    fetch = "timeout 10 busybox wget -q -O -"
    command = f"getent hosts {fqdn} && {fetch} http://{fqdn}/ && {fetch} http://web/"
    apply(layout, namespace, restricted_pod("client", image, command))
    assert wait_phase(layout, namespace, "client", {"Succeeded"}) == "Succeeded"
    output = kubectl(layout, "-n", namespace, "logs", "client").splitlines()
    cluster_ip = kubectl(layout, "-n", namespace, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
    assert output[0].split() == [cluster_ip, fqdn]
    assert output[1:] == [f"hello from {web}", f"hello from {web}"]


def test_pvc_binds_and_uid_10001_writes(layout: Layout, namespace: str, image: str) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }
    writer = restricted_pod(
        "writer",
        image,
        "echo written-by-$(id -u) > /data/proof && ls -ln /data/proof && cat /data/proof",
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    apply(layout, namespace, claim, writer)
    assert wait_phase(layout, namespace, "writer", {"Succeeded"}) == "Succeeded"
    assert kubectl(layout, "-n", namespace, "get", "pvc", "data", "-o", "jsonpath={.status.phase}") == "Bound"
    logs = kubectl(layout, "-n", namespace, "logs", "writer").splitlines()
    assert logs[0].split()[2:4] == [str(UID), str(UID)]  # owner and group of the file
    assert logs[1] == f"written-by-{UID}"
    volume = kubectl(layout, "-n", namespace, "get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}")
    on_host = [path for path in Path(layout.storage).glob(f"{volume}_*/proof")]
    assert len(on_host) == 1, sorted(Path(layout.storage).iterdir())
    assert on_host[0].stat().st_uid == UID
    assert on_host[0].read_text() == f"written-by-{UID}\n"


def test_logs_exec_and_port_forward(layout: Layout, namespace: str, web: str) -> None:
    assert "serving-on-8080" in kubectl(layout, "-n", namespace, "logs", web)
    assert kubectl(layout, "-n", namespace, "exec", web, "--", "cat", "/tmp/www/index.html") == f"hello from {web}\n"
    forward = subprocess.Popen(
        [str(node.kubectl_path()), f"--kubeconfig={layout.admin_kubeconfig}", "-n", namespace,
         "port-forward", f"pod/{web}", ":8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
        assert match, line + (forward.stderr.read() if forward.poll() is not None and forward.stderr else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=10) as response:
            assert response.read().decode() == f"hello from {web}\n"
    finally:
        forward.terminate()
        forward.wait(timeout=10)
