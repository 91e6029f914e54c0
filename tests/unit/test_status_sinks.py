"""The status sinks: the local file ConfigMap, and the Kubernetes ConfigMap patch at the HTTP
boundary of the real `kubernetes` client (a local server plays the API server).

A fake server here because a real one cannot be made to answer what these tests need: 409 to a
patch without resourceVersion, 5xx, or 403 to an Event only. 403 and 404 on the patch itself
come from a real kube-apiserver in tests/chart/test_apiserver.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from jobs.drift.sinks import FileConfigMapSink, KubernetesConfigMapSink, SinkError, StatusEvent


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
    """Answers ConfigMap PATCHes with a scripted list of status codes, and Event POSTs with
    another; records what it got."""

    def __init__(self, statuses: list[int], event_statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses)
        self.event_statuses = list(event_statuses or [])
        self.requests: list[dict] = []  # the ConfigMap patches
        self.events: list[dict] = []  # the Event creations
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _read(self, into: list[dict]) -> dict:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                into.append(
                    {
                        "path": self.path,
                        "body": body,
                        "content_type": self.headers["Content-Type"],
                        "auth": self.headers.get("Authorization"),
                    }
                )
                return body

            def do_PATCH(self) -> None:
                body = self._read(server.requests)
                status = server.statuses.pop(0) if server.statuses else 200
                self._answer(
                    status,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "cm", "namespace": "ns", "uid": "cm-uid-1", **body["metadata"]},
                    },
                )

            def do_POST(self) -> None:
                body = self._read(server.events)
                status = server.event_statuses.pop(0) if server.event_statuses else 201
                self._answer(status, {**body, "apiVersion": "v1", "kind": "Event"})

            def _answer(self, status: int, payload: dict) -> None:
                if status >= 300:
                    payload = {
                        "apiVersion": "v1",
                        "kind": "Status",
                        "status": "Failure",
                        "code": status,
                        "reason": {403: "Forbidden", 404: "NotFound", 409: "Conflict"}.get(status, "InternalError"),
                        "message": f"scripted {status}",
                    }
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
    server = FakeApiServer(*request.param) if isinstance(request.param, tuple) else FakeApiServer(request.param)
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


DECISION = {
    "drift.streamflow.io/decision": "RETRAINING_TRIGGERED",
    "drift.streamflow.io/drift-share": "0.5000",
    "drift.streamflow.io/threshold": "0.30",
}
EVENT = StatusEvent(
    "RetrainingTriggered", "decision=RETRAINING_TRIGGERED drift-share=0.5000 threshold=0.30", warning=True
)


@pytest.mark.parametrize("api_server", [[200]], indirect=True)
def test_each_decision_is_also_an_event_on_the_configmap(api_server: FakeApiServer) -> None:
    _sink(api_server).annotate(DECISION, EVENT)
    assert len(api_server.events) == 1
    event = api_server.events[0]
    assert event["path"] == "/api/v1/namespaces/ml/events"
    body = event["body"]
    assert body["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "streamflow-drift-status",
        "namespace": "ml",
        "uid": "cm-uid-1",
    }
    assert body["type"] == "Warning" and body["reason"] == "RetrainingTriggered"
    assert "decision=RETRAINING_TRIGGERED drift-share=0.5000 threshold=0.30" in body["message"]


@pytest.mark.parametrize("api_server", [([200], [403])], indirect=True)
def test_a_refused_event_does_not_undo_the_recorded_decision(api_server: FakeApiServer, caplog) -> None:
    _sink(api_server).annotate(DECISION, EVENT)  # no SinkError: the annotations landed
    assert len(api_server.requests) == 1 and len(api_server.events) == 1
    assert "Event was not created" in caplog.text


@pytest.mark.parametrize(
    "api_server, needle",
    [([500], "HTTP 500"), ([409] * 5, "still conflicting")],
    indirect=["api_server"],
)
def test_refusals_are_one_line_errors(api_server: FakeApiServer, needle: str) -> None:
    with pytest.raises(SinkError) as caught:
        _sink(api_server).annotate({"drift.streamflow.io/decision": "NO_ACTION"}, EVENT)
    message = str(caught.value)
    assert needle in message and "\n" not in message and "ml/streamflow-drift-status" in message
    expected_attempts = 5 if needle == "still conflicting" else 1  # only conflicts are retried
    assert len(api_server.requests) == expected_attempts
    assert api_server.events == [], "no Event for a decision that was not recorded"


@pytest.mark.parametrize("api_server", [[200]], indirect=True)
def test_kubeconfig_credentials_and_namespace_are_used(api_server: FakeApiServer, tmp_path: Path, monkeypatch) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "local",
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
