"""A real Kubernetes API server on loopback for the tests: etcd + kube-apiserver, nothing else.

No kubelet, scheduler or controllers run: objects are stored and admitted (RBAC, Pod Security
admission, CRD schemas, field validation) but never reconciled. That is what the tests need to
prove the chart's RBAC and pod security on Kubernetes' own code. Built/installed on first use by
tools/toolchain.py (kube-apiserver from the Go module proxy, etcd from Debian).
"""

from __future__ import annotations

import secrets
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tools import toolchain
from tools.api_process import free_port
from tools.monitoring.localstack import start_server

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class ApiServer:
    url: str
    ca_cert: Path  # the serving certificate kube-apiserver generated; it is its own CA
    admin_token: str  # a static token of group system:masters
    workdir: Path

    def client(self, token: str | None = None):
        """A `kubernetes` ApiClient authenticated with `token` (default: the admin's)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_cert)
        configuration.api_key = {"authorization": f"Bearer {token or self.admin_token}"}
        return client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path, token: str, namespace: str) -> Path:
        """A kubeconfig file for `token`, as a user of the cluster would have (mode 0600)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "local",
            "clusters": [
                {"name": "local", "cluster": {"server": self.url, "certificate-authority": str(self.ca_cert)}}
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user", "namespace": namespace}}],
        }
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config))
        return path


def _http_ok(url: str, **kwargs) -> bool:
    return httpx.get(url, timeout=2, **kwargs).status_code == 200


@contextmanager
def local_apiserver() -> Iterator[ApiServer]:
    """Start etcd and kube-apiserver on free 127.0.0.1 ports; yield once /readyz is ok; stop both."""
    etcd_binary, apiserver_binary = toolchain.etcd(), toolchain.kube_apiserver()  # before any process starts
    with tempfile.TemporaryDirectory(prefix="streamflow-apiserver-") as tmp, ExitStack() as running:
        workdir = Path(tmp)
        client_url, peer_url = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
        etcd = start_server(
            "etcd",
            [
                str(etcd_binary),
                "--name",
                "streamflow-test",
                "--data-dir",
                str(workdir / "etcd"),
                "--listen-client-urls",
                client_url,
                "--advertise-client-urls",
                client_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"streamflow-test={peer_url}",
                "--log-level",
                "warn",
                "--logger",
                "zap",
            ],
            client_url,
            workdir,
            is_ready=lambda: _http_ok(f"{client_url}/health"),
        )
        running.callback(etcd.stop)

        admin_token = secrets.token_urlsafe(32)
        token_file = workdir / "tokens.csv"
        token_file.touch(mode=0o600)
        token_file.write_text(f'{admin_token},streamflow-admin,streamflow-admin,"system:masters"\n')
        # The key that signs ServiceAccount tokens (TokenRequest); its public half verifies them.
        signing_key = workdir / "service-account.key"
        toolchain.run_tool(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(signing_key)],
            timeout=60,
        )
        cert_dir = workdir / "certs"
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        ca_cert = cert_dir / "apiserver.crt"
        apiserver = start_server(
            "kube-apiserver",
            [
                str(apiserver_binary),
                f"--etcd-servers={client_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                # only the admin token and ServiceAccount tokens authenticate; RBAC decides
                "--anonymous-auth=false",
                f"--token-auth-file={token_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={signing_key}",
                f"--service-account-signing-key-file={signing_key}",
                "--service-cluster-ip-range=10.96.0.0/24",
                # as kubeadm and kind clusters run: then Pod Security admission, not this flag, is
                # what refuses a privileged pod (the negative control of the Pod Security test)
                "--allow-privileged=true",
                # no controllers or other servers here: skip what would wait for them or complain
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
            ],
            url,
            workdir,
            is_ready=lambda: (
                ca_cert.exists()
                and _http_ok(
                    f"{url}/readyz",
                    verify=ssl.create_default_context(cafile=ca_cert),
                    headers={"Authorization": f"Bearer {admin_token}"},
                )
            ),
        )
        running.callback(apiserver.stop)
        yield ApiServer(url, ca_cert, admin_token, workdir)


def service_account_token(api_client, namespace: str, name: str) -> str:
    """A short-lived token of a ServiceAccount from the TokenRequest API, as the kubelet mounts one."""
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    response = client.CoreV1Api(api_client).create_namespaced_service_account_token(name, namespace, request)
    assert response.status is not None and response.status.token, "the TokenRequest API returned no token"
    return response.status.token


def main() -> None:
    """Start one and wait: `python -m tests.support.apiserver` (Ctrl-C or SIGTERM stops it)."""
    import signal
    import sys

    def stop(signum, frame):
        sys.exit(0)  # unwinds the context manager: both servers stop, the temp dir goes

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    with local_apiserver() as server:
        kubeconfig = server.write_kubeconfig(server.workdir / "admin.kubeconfig", server.admin_token, "default")
        print(f"{server.url} ready: export KUBECONFIG={kubeconfig}", flush=True)
        signal.pause()


if __name__ == "__main__":
    main()
