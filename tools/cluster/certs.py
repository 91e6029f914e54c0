"""The node's PKI, made with openssl: one CA, the certificates of every component, the
service-account key, and the kubeconfigs that carry the client certificates.

Who is who (the API server's Node and RBAC authorizers key on these names):

    apiserver                serving cert: kubernetes.default.svc…, the node IP, 10.96.0.1, 127.0.0.1
    apiserver-kubelet-client client cert the API server presents to the kubelet (system:masters)
    admin                    kubectl's client cert (system:masters)
    kube-controller-manager  CN=system:kube-controller-manager
    kube-scheduler           CN=system:kube-scheduler
    kube-proxy               CN=system:kube-proxy (bound to system:node-proxier by default)
    kubelet                  CN=system:node:<node>, O=system:nodes (Node authorizer, NodeRestriction)
    kubelet-serving          the kubelet's serving cert (the API server verifies it against the CA)
    front-proxy-client       signed by a CA of its own (front-proxy-ca): the API server presents it
                             to aggregated APIs; with it configured, the controller manager and the
                             scheduler find the requestheader CA they look for (without it they log
                             "missing content for CA bundle" every few seconds)
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.cluster.layout import CLUSTER_DOMAIN, KUBERNETES_SERVICE_IP, Layout

DAYS = 365


@dataclass(frozen=True)
class Identity:
    name: str  # file stem under pki/
    common_name: str
    organization: str | None = None
    server: bool = False
    client: bool = True
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    ca: str = "ca"  # the CA that signs it (file stem under pki/)


def identities(layout: Layout) -> list[Identity]:
    node, ip = layout.node_name, layout.node_ip
    service_names = tuple(
        f"kubernetes{suffix}" for suffix in ("", ".default", ".default.svc", f".default.svc.{CLUSTER_DOMAIN}")
    )
    return [
        Identity(
            "apiserver",
            "kube-apiserver",
            server=True,
            client=False,
            dns=(*service_names, "localhost", node),
            ips=(ip, KUBERNETES_SERVICE_IP, "127.0.0.1"),
        ),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Identity("admin", "streamflow-admin", "system:masters"),
        Identity("kube-controller-manager", "system:kube-controller-manager"),
        Identity("kube-scheduler", "system:kube-scheduler"),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("kubelet", f"system:node:{node}", "system:nodes"),
        Identity("kubelet-serving", node, server=True, client=False, dns=(node, "localhost"), ips=(ip, "127.0.0.1")),
        Identity("front-proxy-client", "front-proxy-client", ca="front-proxy-ca"),
    ]


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:3])} … failed: {result.stderr.strip()[-1500:]}")


def _subject(identity: Identity) -> str:
    return (f"/O={identity.organization}" if identity.organization else "") + f"/CN={identity.common_name}"


def _extensions(identity: Identity) -> str:
    usages = [name for name, wanted in (("serverAuth", identity.server), ("clientAuth", identity.client)) if wanted]
    lines = [
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        f"extendedKeyUsage = {', '.join(usages)}",
    ]
    alt_names = [f"DNS:{name}" for name in identity.dns] + [f"IP:{ip}" for ip in identity.ips]
    if alt_names:
        lines.append(f"subjectAltName = {', '.join(alt_names)}")
    return "\n".join(lines) + "\n"


def ensure_pki(layout: Layout) -> None:
    """Create whatever part of the PKI is missing (a complete one is left as it is)."""
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    for ca in ("ca", "front-proxy-ca"):
        if not (pki / f"{ca}.crt").exists():
            _openssl(
                "req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", str(DAYS * 10),
                "-keyout", str(pki / f"{ca}.key"), "-out", str(pki / f"{ca}.crt"),
                "-subj", f"/CN=streamflow-local-{ca}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            )  # fmt: skip
    if not (pki / "sa.pub").exists():
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
        _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for identity in identities(layout):
        crt, key, csr = (pki / f"{identity.name}.{suffix}" for suffix in ("crt", "key", "csr"))
        if crt.exists():
            continue
        extensions = pki / f"{identity.name}.ext"
        extensions.write_text(_extensions(identity))
        _openssl(
            "req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(csr),
            "-subj", _subject(identity),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki / f"{identity.ca}.crt"),
            "-CAkey", str(pki / f"{identity.ca}.key"),
            "-set_serial", "0x" + secrets.token_hex(16), "-days", str(DAYS), "-sha256",
            "-extfile", str(extensions), "-out", str(crt),
        )  # fmt: skip
        csr.unlink()
        extensions.unlink()
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(layout: Layout, identity: str, server: str) -> dict:
    """A kubeconfig for `identity`'s client certificate, certificates embedded (the file stands alone)."""
    pki = layout.pki
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "streamflow-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": identity,
                "user": {
                    "client-certificate-data": _b64(pki / f"{identity}.crt"),
                    "client-key-data": _b64(pki / f"{identity}.key"),
                },
            }
        ],
        "contexts": [{"name": "streamflow-local", "context": {"cluster": "streamflow-local", "user": identity}}],
        "current-context": "streamflow-local",
    }


def write_kubeconfigs(layout: Layout, server: str) -> None:
    layout.kubeconfigs.mkdir(parents=True, exist_ok=True)
    for identity in ("admin", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"):
        path = layout.kubeconfigs / ("admin.conf" if identity == "admin" else f"{identity}.conf")
        path.write_text(yaml.safe_dump(kubeconfig(layout, identity, server), sort_keys=False))
        path.chmod(0o600)


def check_node_identity(layout: Layout) -> None:
    """Certificates name the node and its IP: refuse a state dir made for another name or address."""
    wanted = {"name": layout.node_name, "ip": layout.node_ip}
    if layout.node_info.exists():
        recorded = json.loads(layout.node_info.read_text())
        if recorded != wanted:
            raise RuntimeError(
                f"{layout.node} was made for node {recorded} but this machine is {wanted}: "
                "run `make down CLUSTER=local` to remove it, then `make cluster CLUSTER=local`"
            )
    else:
        layout.node.mkdir(parents=True, exist_ok=True)
        layout.node_info.write_text(json.dumps(wanted) + "\n")
