"""The status sinks: the local file ConfigMap, and the Kubernetes ConfigMap patch at the HTTP
boundary of the real `kubernetes` client (a local server plays the API server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from jobs.drift.sinks import FileConfigMapSink, KubernetesConfigMapSink, SinkError


def test_file_sink_merges_annotations_and_keeps_others(tmp_path: Path) -> None:
    sink = FileConfigMapSink(tmp_path / "status" / "cm.json", "streamflow-drift-status", "default")
    sink.annotate({"a/x": "1", "a/y": "2"})
    sink.annotate({"a/y": "3"})
    configmap = json.loads((tmp_path / "status" / "cm.json").read_text())
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "streamflow-drift-status"
    assert configmap["metadata"]["annotations"] == {"a/x": "1", "a/y": "3"}
    assert not list((tmp_path / "status").glob(".*tmp"))


def test_file_sink_refuses_a_corrupt_file_without_touching_it(tmp_path: Path) -> None:
    path = tmp_path / "cm.json"
    path.write_text("{broken")
    with pytest.raises(SinkError, match="not valid JSON"):
        FileConfigMapSink(path, "cm", "default").annotate({"a": "b"})
    assert path.read_text() == "{broken"


class FakeApiServer:
    """Answers ConfigMap PATCHes with a scripted list of status codes; records what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "content_type": self.headers["Content-Type"],
                                        "auth": self.headers.get("Authorization")})
                status = server.statuses.pop(0) if server.statuses else 200
                if status == 200:
                    payload = {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "cm", "namespace": "ns", **body["metadata"]}}
                else:
                    payload = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": status,
                               "reason": {403: "Forbidden", 404: "NotFound", 409: "Conflict"}.get(status, "InternalError"),
                               "message": f"scripted {status}"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api_server(request):
    server = FakeApiServer(request.param)
    yield server
    server.close()


def _sink(server: FakeApiServer) -> KubernetesConfigMapSink:
    configuration = client.Configuration()
    configuration.host = server.url
    return KubernetesConfigMapSink("streamflow-drift-status", "ml", client.CoreV1Api(client.ApiClient(configuration)))


@pytest.mark.parametrize("api_server", [[409, 409, 200]], indirect=True)
def test_conflicts_are_retried_until_the_patch_lands(api_server: FakeApiServer) -> None:
    _sink(api_server).annotate({"drift.streamflow.io/decision": "NO_ACTION"})
    assert len(api_server.requests) == 3
    first = api_server.requests[0]
    assert first["path"] == "/api/v1/namespaces/ml/configmaps/streamflow-drift-status"
    assert first["body"] == {"metadata": {"annotations": {"drift.streamflow.io/decision": "NO_ACTION"}}}
    assert "patch" in first["content_type"]


@pytest.mark.parametrize(
    "api_server, needle",
    [([403], "forbidden"), ([404], "not found"), ([500], "HTTP 500"), ([409] * 5, "still conflicting")],
    indirect=["api_server"],
)
def test_refusals_are_one_line_errors(api_server: FakeApiServer, needle: str) -> None:
    with pytest.raises(SinkError) as caught:
        _sink(api_server).annotate({"drift.streamflow.io/decision": "NO_ACTION"})
    message = str(caught.value)
    assert needle in message and "\n" not in message and "ml/streamflow-drift-status" in message
    expected_attempts = 5 if needle == "still conflicting" else 1  # only conflicts are retried
    assert len(api_server.requests) == expected_attempts


@pytest.mark.parametrize("api_server", [[200]], indirect=True)
def test_kubeconfig_credentials_and_namespace_are_used(api_server: FakeApiServer, tmp_path: Path, monkeypatch) -> None:
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": api_server.url}}],
        "users": [{"name": "job", "user": {"token": "test-token"}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "job", "namespace": "monitoring"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    sink = KubernetesConfigMapSink.from_environment("streamflow-drift-status", None)
    assert sink.describe() == "configmap:monitoring/streamflow-drift-status"
    sink.annotate({"k": "v"})
    assert api_server.requests[0]["path"] == "/api/v1/namespaces/monitoring/configmaps/streamflow-drift-status"
    assert api_server.requests[0]["auth"] == "Bearer test-token"


def test_no_credentials_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SinkError, match="no Kubernetes credentials"):
        KubernetesConfigMapSink.from_environment("cm", None)
