"""Everything the node needs before it starts: Debian packages, binaries built from the Go module
proxy (cached under ~/.cache/streamflow/tools by tools.toolchain), and the node's own images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tools import toolchain
from tools.cluster import images
from tools.cluster.layout import Layout
from tools.cluster.progress import say, step, timed

# What must be on the host (a binary or a file) -> the Debian package that brings it
DEBIAN = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "buildah": "buildah",
    "iptables": "iptables",
    "nft": "nftables",  # `down` deletes the netfilter tables iptables-nft created (iptables cannot)
    "conntrack": "conntrack",
    "etcd": "etcd-server",
    "gcc": "gcc",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
    "strip": "binutils",
    "openssl": "openssl",
    "ip": "iproute2",
}


def _present(what: str) -> bool:
    return Path(what).exists() if what.startswith("/") else shutil.which(what) is not None


def ensure_packages() -> None:
    missing = sorted({package for what, package in DEBIAN.items() if not _present(what)})
    if missing:
        with step(f"installing Debian packages: {' '.join(missing)}"):
            toolchain.apt_install(*missing)
    still = [what for what in DEBIAN if not _present(what)]
    if still:
        raise RuntimeError(f"still missing after apt-get install: {', '.join(still)}")


def binaries() -> dict[str, Path]:
    """Paths of the node's binaries, building what is not cached yet (the first time: ~15 min of
    CPU for the Kubernetes binaries, a few minutes for the others)."""
    version = toolchain.KUBE_APISERVER_VERSION
    found: dict[str, Path] = {}
    cached = toolchain.CACHE / f"kubernetes-{version}"
    if not all((cached / command).exists() for command in toolchain.KUBE_NODE_COMMANDS):
        say("the Kubernetes binaries are built once from the Go module proxy (~15 min on 2 cores; cached after)")
    found.update(
        timed(
            f"kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl {version}",
            lambda: toolchain.kubernetes_binaries(("kube-apiserver", *toolchain.KUBE_NODE_COMMANDS)),
        )
    )
    found["coredns"] = timed(f"CoreDNS {toolchain.COREDNS_VERSION} (minimal plugin build)", toolchain.coredns)
    found["crictl"] = timed(f"crictl {toolchain.CRICTL_VERSION}", toolchain.crictl)
    found["local-path-provisioner"] = timed(
        f"local-path-provisioner {toolchain.LOCAL_PATH_PROVISIONER_VERSION}", toolchain.local_path_provisioner
    )
    found["etcd"] = toolchain.etcd()
    # not the node's: the Helm that `make deploy CLUSTER=local` runs (the Makefile names its cache path)
    found["helm"] = timed(f"helm {toolchain.HELM_VERSION}", toolchain.helm)
    return found


def node_images(layout: Layout, binaries: dict[str, Path]) -> dict[str, images.Image]:
    """The images the node runs: pause (the sandbox image), CoreDNS, local-path and its helper."""
    registry = images.REGISTRY
    return {
        "pause": timed("pause image (upstream pause.c, gcc -static)", lambda: images.pause_image(layout)),
        "coredns": timed(
            "CoreDNS image",
            lambda: images.binary_image(
                layout, f"{registry}/coredns:{toolchain.COREDNS_VERSION.lstrip('v')}", binaries["coredns"], "/coredns"
            ),
        ),
        "local-path": timed(
            "local-path-provisioner image",
            lambda: images.binary_image(
                layout,
                f"{registry}/local-path-provisioner:{toolchain.LOCAL_PATH_PROVISIONER_VERSION.lstrip('v')}",
                binaries["local-path-provisioner"],
                "/local-path-provisioner",
            ),
        ),
        "busybox": timed("busybox image (Debian's busybox-static)", lambda: images.busybox_image(layout)),
    }
