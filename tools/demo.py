"""The last act of `make demo`: the real API on a free loopback port, a few requests, the
metrics that moved.

    python -m tools.demo      (after `python -m jobs.bootstrap` and the drift runs)
"""

from __future__ import annotations

import json
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from streamflow.settings import get_settings
from tools.api_process import running_api

REQUESTS = (
    ("known user (seed example)", {"user_id": "4686-GEFRM"}),
    ("known user (seed example)", {"user_id": "U0001"}),
    ("unknown user", {"user_id": "NOT-A-USER"}),
    ("malformed body", {"userid": 42}),
)


def api_samples(metrics_text: str) -> dict[str, float]:
    samples: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name.startswith("api_") and not s.name.endswith("_created"):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def main() -> int:
    settings = get_settings()
    log_path = str(settings.data_dir / "demo-api.log")
    print(f"starting the API (python -m api) over {settings.data_dir}/ ... (log: {log_path})")
    with running_api({}, log_path=log_path) as api, api.client() as client:
        print(f"API ready at {api.base_url}  (readiness: {client.get('/ready').json()})\n")
        before = api_samples(client.get("/metrics").text)
        for what, body in REQUESTS:
            response = client.post("/predict", json=body)
            print(f"POST /predict {json.dumps(body)}  [{what}] -> {response.status_code}")
            print("   ", json.dumps(response.json())[:400])
        after = api_samples(client.get("/metrics").text)
    print("\nmetrics that moved (GET /metrics, before -> after):")
    for key in sorted(after):
        if after[key] != before.get(key, 0.0) and "_bucket" not in key:
            print(f"  {key}: {before.get(key, 0.0):g} -> {after[key]:g}")
    print("\ndemo done: the API has stopped. `make serve` keeps it running on 127.0.0.1:8000.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
