"""Bring the local node up, take it down, and say how it is.

up:   packages → binaries → host record → PKI + configs → etcd → kube-apiserver → containerd
      (+ node images) → kube-controller-manager, kube-scheduler → kubelet, kube-proxy →
      CoreDNS + local-path-provisioner → node Ready and CoreDNS answering from the host.
down: the kube components, every pod sandbox (through CRI: CNI DEL), containerd and its shims,
      kube-apiserver, etcd; then every mount, link, iptables rule, sysctl, cgroup and host path
      put back as recorded before `up`; then a check that nothing is left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from tools import toolchain
from tools.cluster import addons, build, certs, configs, hoststate, images, processes
from tools.cluster.layout import (
    APISERVER_PORT,
    CLUSTER_DOMAIN,
    ETCD_CLIENT_PORT,
    HOST_PORTS,
    KUBERNETES_SERVICE_IP,
    Layout,
)
from tools.cluster.progress import duration, elapsed, say, step

# Start order; `down` stops them in the reverse order of these groups (see down()).
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "containerd",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
READY_TIMEOUT = 180.0


class ClusterError(RuntimeError):
    """A failure with what to do about it in its message."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local node runs containerd, the kubelet and iptables: run it as root")


def kubectl_path() -> Path:
    return toolchain.CACHE / f"kubernetes-{toolchain.KUBE_APISERVER_VERSION}" / "kubectl"


def kubectl(layout: Layout, *args: str, stdin: str | None = None, timeout: float = 120.0, check: bool = True) -> str:
    result = subprocess.run(
        [str(kubectl_path()), f"--kubeconfig={layout.admin_kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def apply(layout: Layout, manifests: list[dict]) -> None:
    kubectl(layout, "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests, sort_keys=False))


def _ssl_context(layout: Layout) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return context


def api_get(layout: Layout, path: str, timeout: float = 5.0) -> str:
    url = f"https://{layout.node_ip}:{APISERVER_PORT}{path}"
    with urllib.request.urlopen(url, context=_ssl_context(layout), timeout=timeout) as response:
        return response.read().decode()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(what: str, check: Callable[[], bool], layout: Layout, component: str | None, timeout: float) -> None:
    """Poll check() until it is true; fail early with the component's log when its process died."""
    deadline = time.monotonic() + timeout
    last = "not yet"
    while True:
        try:
            if check():
                return
        except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as error:
            last = f"{type(error).__name__}: {error}"
        if component is not None and processes.find(layout, component) is None:
            raise ClusterError(
                f"{component} exited while waiting for {what}; the end of {layout.logs / component}.log:\n"
                + processes.log_tail(layout, component)
            )
        if time.monotonic() > deadline:
            where = ""
            if component is not None:
                where = f"; the end of {layout.logs / component}.log:\n{processes.log_tail(layout, component)}"
            raise ClusterError(f"timed out after {duration(timeout)} waiting for {what} (last: {last}){where}")
        time.sleep(0.5)


def running(layout: Layout) -> dict[str, processes.Running | None]:
    return {name: processes.find(layout, name) for name in COMPONENTS}


def _port_holder(port: int) -> str:
    result = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "another process"


def preflight(layout: Layout) -> None:
    busy = []
    for what, port in HOST_PORTS.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                busy.append(f"{what} needs port {port}, held by: {_port_holder(port)}")
    if busy:
        raise ClusterError("ports in use (another node? `make down CLUSTER=local`):\n  " + "\n  ".join(busy))
    for hierarchy in ("cpu", "memory", "pids", "cpuset"):
        if not Path("/sys/fs/cgroup", hierarchy).is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
            raise ClusterError(f"cgroup hierarchy /sys/fs/cgroup/{hierarchy} is not mounted: the kubelet needs it")


def _node_ready(layout: Layout) -> bool:
    node = json.loads(kubectl(layout, "get", "node", layout.node_name, "-o", "json", timeout=10))
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def _available(layout: Layout, namespace: str, deployment: str) -> bool:
    found = json.loads(kubectl(layout, "-n", namespace, "get", "deployment", deployment, "-o", "json", timeout=10))
    return found.get("status", {}).get("availableReplicas", 0) >= 1


def _dns_answers() -> bool:
    return addons.dns_query(f"kubernetes.default.svc.{CLUSTER_DOMAIN}") == [KUBERNETES_SERVICE_IP]


def up(layout: Layout) -> None:
    require_root()
    state = running(layout)
    if all(state.values()):
        with step("checking the running node"):
            wait_for("the API server", lambda: api_get(layout, "/readyz") == "ok", layout, "kube-apiserver", 30)
            wait_for(f"node {layout.node_name} Ready", lambda: _node_ready(layout), layout, "kubelet", 60)
        say(f"the local node is already running (state in {layout.node}); `make down CLUSTER=local` stops it")
        _usage(layout)
        return
    if any(state.values()):
        up_now = ", ".join(name for name, found in state.items() if found)
        down_now = ", ".join(name for name, found in state.items() if not found)
        raise ClusterError(
            f"the local node is partly running ({up_now} up; {down_now} not): see {layout.logs}, "
            "then `make down CLUSTER=local` and `make cluster CLUSTER=local`"
        )
    say(f"local node {layout.node_name} ({layout.node_ip}), state in {layout.node}")
    build.ensure_packages()
    binaries = build.binaries()
    preflight(layout)
    certs.check_node_identity(layout)
    with step("recording host state (sysctls, iptables, mounts, links, cgroups) for `down`"):
        hoststate.record(layout)
    if layout.logs.exists():  # logs of a previous life of this state dir
        shutil.rmtree(layout.logs)
    with step("certificates, keys and kubeconfigs (openssl)"):
        certs.ensure_pki(layout)
        certs.write_kubeconfigs(layout, configs.apiserver_url(layout))
    node_images = build.node_images(layout, binaries)
    configs.write_configs(layout, node_images["pause"].name)
    commands = configs.command_lines(layout, binaries)

    def start(name: str) -> None:
        found = processes.start(layout, name, commands[name])
        say(f"  {name} started (pid {found.pid}, log {layout.logs / name}.log)")

    with step("etcd"):
        start("etcd")
        wait_for("etcd", lambda: _http_ok(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health"), layout, "etcd", 60)
    with step("kube-apiserver"):
        start("kube-apiserver")
        wait_for("the API server's /readyz", lambda: api_get(layout, "/readyz") == "ok", layout, "kube-apiserver", 120)
    with step("containerd"):
        start("containerd")
        socket_path = layout.containerd_socket
        wait_for("containerd's socket", socket_path.exists, layout, "containerd", 60)
        wait_for("containerd to answer ctr", lambda: isinstance(images.imported(layout), set), layout, "containerd", 60)
    with step(f"importing {len(node_images)} images into containerd"):
        images.import_images(layout, list(node_images.values()))
    with step("kube-controller-manager, kube-scheduler, kubelet, kube-proxy"):
        for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
            start(name)
    with step(f"node {layout.node_name} Ready"):
        wait_for(f"node {layout.node_name} Ready", lambda: _node_ready(layout), layout, "kubelet", READY_TIMEOUT)
    with step("CoreDNS and local-path-provisioner (StorageClass standard, default)"):
        apply(layout, addons.coredns_manifests(node_images["coredns"].name))
        apply(
            layout,
            addons.local_path_manifests(layout, node_images["local-path"].name, node_images["busybox"].name),
        )
        wait_for("CoreDNS available", lambda: _available(layout, "kube-system", "coredns"), layout, None, READY_TIMEOUT)
        wait_for(
            f"CoreDNS answering kubernetes.default on {KUBERNETES_SERVICE_IP}'s DNS",
            _dns_answers,
            layout,
            "kube-proxy",
            READY_TIMEOUT,
        )
        wait_for(
            "local-path-provisioner available",
            lambda: _available(layout, "local-path-storage", "local-path-provisioner"),
            layout,
            None,
            READY_TIMEOUT,
        )
    say(f"the local node is up in {duration(elapsed())}")
    _usage(layout)


def load_images(layout: Layout, built: list[images.Image]) -> None:
    """Import image archives into the running node's containerd (what it lacks or holds in another build)."""
    if not all(running(layout).values()):
        raise ClusterError("the local node is not running: `make cluster CLUSTER=local` first")
    images.import_missing(layout, built)


def _usage(layout: Layout) -> None:
    print(
        f"\n  export KUBECONFIG={layout.admin_kubeconfig}\n"
        f"  {kubectl_path()} get nodes   (kubectl {toolchain.KUBE_APISERVER_VERSION})\n"
        f"  images: buildah push IMAGE docker-archive:x.tar:IMAGE && "
        f"ctr --address {layout.containerd_socket} -n k8s.io images import x.tar\n"
        "  stop: make down CLUSTER=local\n",
        flush=True,
    )


def _remove_sandboxes(layout: Layout) -> None:
    """Stop and remove every pod sandbox through CRI, so CNI DEL releases addresses and veths."""
    crictl = toolchain.crictl()
    endpoint = f"unix://{layout.containerd_socket}"
    if crictl.exists():
        result = subprocess.run(
            [str(crictl), f"--runtime-endpoint={endpoint}", f"--image-endpoint={endpoint}", "--timeout=60s",
             "rmp", "--force", "--all"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            say(f"  crictl rmp: {result.stderr.strip()[-500:]}")


def down(layout: Layout) -> list[str]:
    """Stop everything and put the host back; returns what is still left (empty when clean)."""
    require_root()
    if not layout.node.exists():
        say(f"no local node state in {layout.node}: nothing to stop")
        return []
    record = hoststate.HostRecord.load(layout.host_record) if layout.host_record.exists() else None
    with step("stopping kube-controller-manager, kube-scheduler, kube-proxy, kubelet"):
        for name in ("kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"):
            processes.stop(layout, name)
    if processes.find(layout, "containerd") is not None:
        with step("removing every pod sandbox (CRI, CNI DEL)"):
            _remove_sandboxes(layout)
    with step("stopping containerd, its shims and any pod process left"):
        processes.stop(layout, "containerd")
        for pid in processes.pids_with_argument(str(layout.containerd_socket)):
            processes.stop_pid(pid, timeout=5)
        for pid in processes.pids_in_cgroup("/kubepods"):
            processes.stop_pid(pid, timeout=5)
    with step("stopping kube-apiserver and etcd"):
        processes.stop(layout, "kube-apiserver")
        processes.stop(layout, "etcd")
    if record is None:
        say(f"  no host record at {layout.host_record}: host state cannot be compared (was `up` interrupted early?)")
        shutil.rmtree(layout.node, ignore_errors=True)
        return []
    with step("unmounting pod volumes, root filesystems and network namespaces"):
        for point in hoststate.unmount_all(layout, record.mounts):
            say(f"  unmounted {point}")
    with step("restoring the host: links, iptables, sysctls, cgroups, paths"):
        for what in (
            *(f"link deleted: {link}" for link in hoststate.remove_links(record.links)),
            *hoststate.restore_iptables(record.iptables),
            *(f"netfilter table deleted: {table}" for table in hoststate.remove_nft_tables(record.nft_tables)),
            *(f"cgroup removed: {path}" for path in hoststate.remove_cgroups(record.cgroups)),
            *(f"path removed: {path}" for path in hoststate.remove_paths(record.paths)),
        ):
            say(f"  {what}")
        restored, failed = hoststate.restore_sysctls(record.sysctls)
        for line in restored:
            say(f"  sysctl restored: {line}")
        for line in failed:
            say(f"  sysctl NOT restored: {line}")
    with step("checking the host against the record"):
        left = hoststate.leftovers(layout, record)
    left += [
        f"process {pid} still runs with {layout.node} on its command line"
        for pid in processes.pids_with_argument(str(layout.containerd_socket))
    ]
    kept_logs = layout.root / "last-logs"
    if layout.logs.exists():
        shutil.rmtree(kept_logs, ignore_errors=True)
        shutil.move(str(layout.logs), kept_logs)
    if not left:
        with step(f"removing {layout.node}"):
            shutil.rmtree(layout.node, ignore_errors=True)
        say(f"the local node is down and the host is as recorded (logs kept in {kept_logs})")
    else:
        say(f"the node is stopped but the host is NOT as recorded ({layout.node} kept for `down` to retry):")
        for line in left:
            say(f"  {line}")
    return left


def status(layout: Layout) -> bool:
    """Print each component (pid, RSS) and the node's condition; True when all of it runs."""
    state = running(layout)
    total = 0
    for name, found in state.items():
        if found is None:
            print(f"  {name:<24} not running")
            continue
        rss = processes.rss_kib(found.pid) or 0
        total += rss
        print(f"  {name:<24} pid {found.pid:<8} RSS {rss / 1024:7.1f} MiB")
    shims = processes.pids_with_argument(str(layout.containerd_socket))
    shim_rss = sum(processes.rss_kib(pid) or 0 for pid in shims)
    pods = processes.pids_in_cgroup("/kubepods")
    pod_rss = sum(processes.rss_kib(pid) or 0 for pid in pods)
    print(f"  {'containerd shims':<24} {len(shims)} processes RSS {shim_rss / 1024:7.1f} MiB")
    print(f"  {'pod processes':<24} {len(pods)} processes RSS {pod_rss / 1024:7.1f} MiB")
    print(f"  {'total':<24} RSS {(total + shim_rss + pod_rss) / 1024:7.1f} MiB")
    if not all(state.values()):
        return False
    try:
        print(kubectl(layout, "get", "nodes", "-o", "wide", timeout=10))
        print(kubectl(layout, "get", "pods", "-A", "-o", "wide", timeout=10))
    except (ClusterError, subprocess.SubprocessError) as error:
        print(f"  API: {error}")
        return False
    return True
