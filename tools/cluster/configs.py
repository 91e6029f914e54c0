"""Configuration files of containerd, CNI, the kubelet and kube-proxy, and every component's
command line: what runs, with which flags, and why the flags that are not defaults are set.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tools.cluster.layout import (
    APISERVER_PORT,
    BRIDGE,
    CLUSTER_DOMAIN,
    CNI_NETWORK,
    CONTROLLER_MANAGER_PORT,
    DNS_SERVICE_IP,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    KUBE_PROXY_HEALTHZ_PORT,
    KUBE_PROXY_METRICS_PORT,
    KUBELET_HEALTHZ_PORT,
    KUBELET_PORT,
    POD_CIDR,
    SCHEDULER_PORT,
    SERVICE_CIDR,
    Layout,
)

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
RUNC = "/usr/sbin/runc"
SERVICE_ACCOUNT_ISSUER = f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}"


def apiserver_url(layout: Layout) -> str:
    return f"https://{layout.node_ip}:{APISERVER_PORT}"


def containerd_toml(layout: Layout, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2), its root and state in the node's state dir.

    restrict_oom_score_adj: every sandbox fails without it here (`runc create failed: … can't get
    final child's PID from pipe: EOF`; runc --debug: `nsexec: failed to update
    /proc/self/oom_score_adj: Permission denied`): the machine has no CAP_SYS_RESOURCE, so runc
    may not set the kubelet's negative oom_score_adj; this clamps it to the current value.
    SystemdCgroup = false: cgroup v1 and no systemd (the kubelet uses cgroupfs as well).
    enable_unprivileged_ports/icmp: containerd 2's defaults (what kind runs), so a non-root
    container may bind ports below 1024 as it may on kind.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.node / "containerd" / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf_dir}"
"""


def cni_conflist(layout: Layout) -> dict:
    """One bridge for every pod of the node; host-local addresses; portmap for hostPort.

    containerd adds the loopback plugin to every sandbox by itself. hairpinMode lets a pod reach
    itself through its own Service.
    """
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_data / "networks"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: Layout) -> dict:
    """The kubelet: cgroupfs (no systemd), cgroup v1 allowed, swap tolerated, TLS from our CA."""
    pki = layout.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [DNS_SERVICE_IP],
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(layout.node / "pod-logs"),
        # The disk is shared with other work: evict only when it is really full
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "nodefs.inodesFree": "2%",
            "imagefs.available": "2%",
        },
        "imageGCHighThresholdPercent": 95,
        "imageGCLowThresholdPercent": 90,
        "serializeImagePulls": False,
        "registerNode": True,
    }


def kube_proxy_config(layout: Layout) -> dict:
    """kube-proxy in iptables mode, told to leave the host's conntrack tunables alone.

    Its defaults raise nf_conntrack_max and the TCP timeouts and set route_localnet (for
    NodePorts on 127.0.0.1); zero values and localhostNodePorts: false keep those sysctls as
    they were (`down` restores any that changed anyway).
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.kubeconfigs / "kube-proxy.conf")},
        "mode": "iptables",
        "hostnameOverride": layout.node_name,
        "bindAddress": layout.node_ip,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{KUBE_PROXY_METRICS_PORT}",
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": ["primary"],  # NodePorts on the node IP only
    }


def write_configs(layout: Layout, sandbox_image: str) -> None:
    layout.etc.mkdir(parents=True, exist_ok=True)
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    for directory in (layout.containerd_root, layout.containerd_state, layout.kubelet_root, layout.storage):
        directory.mkdir(parents=True, exist_ok=True)
    (layout.etc / "containerd.toml").write_text(containerd_toml(layout, sandbox_image))
    (layout.cni_conf_dir / f"10-{CNI_NETWORK}.conflist").write_text(json.dumps(cni_conflist(layout), indent=2) + "\n")
    (layout.etc / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(layout), sort_keys=False))
    (layout.etc / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(layout), sort_keys=False))


def command_lines(layout: Layout, binaries: dict[str, Path]) -> dict[str, list[str]]:
    """Every component's command line, in start order."""
    pki, kubeconfigs = layout.pki, layout.kubeconfigs
    etcd_client = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    etcd_peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"

    def component_auth(name: str) -> list[str]:
        conf = str(kubeconfigs / f"{name}.conf")
        return [
            f"--kubeconfig={conf}",
            f"--authentication-kubeconfig={conf}",
            f"--authorization-kubeconfig={conf}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={pki / name}",
            "--leader-elect=false",
        ]

    return {
        "etcd": [
            str(binaries["etcd"]),
            "--name=node",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={etcd_client}",
            f"--advertise-client-urls={etcd_client}",
            f"--listen-peer-urls={etcd_peer}",
            f"--initial-advertise-peer-urls={etcd_peer}",
            f"--initial-cluster=node={etcd_peer}",
            "--logger=zap",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(binaries["kube-apiserver"]),
            f"--etcd-servers={etcd_client}",
            f"--advertise-address={layout.node_ip}",
            f"--bind-address={layout.node_ip}",
            f"--secure-port={APISERVER_PORT}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            # The host name maps to 127.0.0.1 in /etc/hosts: logs, exec and port-forward would
            # dial the kubelet there and fail with "address not allowed"
            "--kubelet-preferred-address-types=InternalIP",
            # The aggregation layer's front proxy (what kubeadm configures too)
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cert-dir={pki / 'kube-apiserver'}",
            "--allow-privileged=true",
            "--profiling=false",
        ],
        "containerd": ["containerd", f"--config={layout.etc / 'containerd.toml'}", "--log-level=warn"],
        "kube-controller-manager": [
            str(binaries["kube-controller-manager"]),
            *component_auth("kube-controller-manager"),
            f"--secure-port={CONTROLLER_MANAGER_PORT}",
            "--cluster-name=streamflow-local",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ],
        "kube-scheduler": [
            str(binaries["kube-scheduler"]),
            *component_auth("kube-scheduler"),
            f"--secure-port={SCHEDULER_PORT}",
        ],
        "kubelet": [
            str(binaries["kubelet"]),
            f"--config={layout.etc / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfigs / 'kubelet.conf'}",
            f"--root-dir={layout.kubelet_root}",
            f"--hostname-override={layout.node_name}",
            f"--node-ip={layout.node_ip}",
        ],
        "kube-proxy": [str(binaries["kube-proxy"]), f"--config={layout.etc / 'kube-proxy.yaml'}"],
    }
