"""Where the local node keeps its state, and the addresses it uses: one place for both.

State dir (STREAMFLOW_CLUSTER_DIR, default ~/.cache/streamflow/cluster):

    images/   image archives built once (pause, CoreDNS, ...): kept across `down`
    node/     one cluster's life: removed by `down` (its logs/ are kept until the next `up`)
      pki/          CA, serving and client certificates, service-account key (openssl)
      kubeconfig/   admin.conf (for kubectl) and one per component
      etc/          containerd, kubelet and kube-proxy configuration; CNI config in etc/cni
      etcd/         etcd's data
      containerd/   containerd's root (images, snapshots) and state
      kubelet/      the kubelet's root dir (pod volumes are mounted under it)
      storage/      the PersistentVolumes of local-path-provisioner
      cni/          host-local's IP allocations
      logs/         one log per process
      pids/         one pid file per process
      host.json     host state recorded before start, restored by `down` (sysctls, iptables, paths)
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

DEFAULT_DIR = Path.home() / ".cache" / "streamflow" / "cluster"

# Addresses inside the cluster (single node: one /24 of pod addresses on the bridge)
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "cni0"
CNI_NETWORK = "streamflow"

# Host ports (all below the ephemeral range, so tests' free ports never take them)
APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_PROXY_METRICS_PORT = 10249
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
HOST_PORTS = {
    "kube-apiserver": APISERVER_PORT,
    "etcd (client)": ETCD_CLIENT_PORT,
    "etcd (peer)": ETCD_PEER_PORT,
    "kubelet": KUBELET_PORT,
    "kubelet (healthz)": KUBELET_HEALTHZ_PORT,
    "kube-proxy (healthz)": KUBE_PROXY_HEALTHZ_PORT,
    "kube-proxy (metrics)": KUBE_PROXY_METRICS_PORT,
    "kube-controller-manager": CONTROLLER_MANAGER_PORT,
    "kube-scheduler": SCHEDULER_PORT,
}

# The directories of the host the node uses outside its state dir (paths hard-coded upstream):
# containerd's shim sockets, the netns mounts, libcni's result cache, the kubelet's device-plugin
# dir and its container-log symlinks (pod logs themselves go to node/pod-logs: podLogsDir). The
# defaults the node's configuration moves elsewhere are watched too, so `down` notices any use.
HOST_PATHS = (
    Path("/run/containerd"),
    Path("/run/netns"),
    Path("/var/lib/cni"),
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/var/lib/containerd"),
    Path("/etc/cni"),
    Path("/etc/kubernetes"),
    Path("/run/kubernetes"),
)


def default_route_ip() -> str:
    """The IPv4 address of the interface of the default route: the node's InternalIP.

    Pods reach the API server through it (the kubernetes Service is DNATed to it), so it cannot
    be a loopback address.
    """
    route = subprocess.run(["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True, check=False)
    words = route.stdout.split()
    if route.returncode != 0 or "src" not in words:
        raise RuntimeError(
            f"no IPv4 default route (`ip -4 route get 1.1.1.1`: {route.stderr.strip() or route.stdout.strip()}): "
            "the node needs a non-loopback address; set STREAMFLOW_NODE_IP"
        )
    return words[words.index("src") + 1]


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def default(cls) -> Layout:
        return cls(Path(os.environ.get("STREAMFLOW_CLUSTER_DIR", DEFAULT_DIR)).resolve())

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def node(self) -> Path:
        return self.root / "node"

    @property
    def pki(self) -> Path:
        return self.node / "pki"

    @property
    def kubeconfigs(self) -> Path:
        return self.node / "kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfigs / "admin.conf"

    @property
    def etc(self) -> Path:
        return self.node / "etc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.etc / "cni"

    @property
    def etcd_data(self) -> Path:
        return self.node / "etcd"

    @property
    def containerd_root(self) -> Path:
        return self.node / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.node / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.node / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.node / "kubelet"

    @property
    def storage(self) -> Path:
        return self.node / "storage"

    @property
    def cni_data(self) -> Path:
        return self.node / "cni"

    @property
    def logs(self) -> Path:
        return self.node / "logs"

    @property
    def pids(self) -> Path:
        return self.node / "pids"

    @property
    def host_record(self) -> Path:
        return self.node / "host.json"

    @property
    def node_info(self) -> Path:
        """The node name and IP this cluster was made for (certificates carry them)."""
        return self.node / "node.json"

    @cached_property
    def node_name(self) -> str:
        return socket.gethostname().split(".")[0].lower()

    @cached_property
    def node_ip(self) -> str:
        return os.environ.get("STREAMFLOW_NODE_IP") or default_route_ip()
