"""Property-based fuzzing of the real API (uvicorn on 127.0.0.1) from its own OpenAPI spec.

Schemathesis generates valid and invalid requests for every operation in /openapi.json
(/metrics is not in the spec: Prometheus text, checked in test_api.py) and checks each answer:
never a 5xx, the status code declared for the operation, the declared content type, and a body
that conforms to the declared schema; invalid input must be rejected with a 4xx. It runs as its
CLI (seeded, bounded, no example database) and the test reads its JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import data_env
from tools.api_process import ApiProcess, running_api

SEED = 7
MAX_EXAMPLES = 1000  # per operation and phase: ~1,050 cases in all, most of them on POST /predict
MIN_CASES = 1000
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
# Every answer each operation can give, as the spec must declare it.
DECLARED = {
    ("post", "/predict"): {"200", "404", "422", "503"},
    ("get", "/health"): {"200"},
    ("get", "/ready"): {"200", "503"},
}


@pytest.fixture(scope="module")
def api_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-api") / "api.log"


@pytest.fixture(scope="module")
def api(demo_dir: Path, api_log: Path):
    with running_api(data_env(demo_dir), log_path=str(api_log)) as api:
        yield api


def test_spec_declares_every_answer_of_every_route(api: ApiProcess) -> None:
    spec = httpx.get(f"{api.base_url}/openapi.json", timeout=10).json()
    declared = {
        (method, path): set(operation["responses"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    assert declared == DECLARED
    for (method, path), statuses in DECLARED.items():
        for status in statuses:
            content = spec["paths"][path][method]["responses"][status]["content"]
            assert "$ref" in content["application/json"]["schema"], (method, path, status)


def test_fuzzing_finds_no_server_error_and_no_schema_violation(api: ApiProcess, api_log: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "schemathesis.json"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--max-failures",
        "20",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    # cwd: anything the tool leaves behind stays in tmp_path
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == [] and report["errors"] == [], output
    assert report["test_cases"]["with_failures"] == 0 and report["test_cases"]["errored"] == 0, output
    assert report["operations"]["tested"] == len(DECLARED), output
    assert report["test_cases"]["generated"] >= MIN_CASES, output
    assert result.returncode == 0, output
    # the server is the one that started, and it logged no unhandled error
    assert api.process.poll() is None
    log = api_log.read_text()
    assert "unhandled error" not in log and "Traceback" not in log
    print(f"schemathesis: {report['test_cases']['generated']} cases in {report['running_time']:.1f}s")
