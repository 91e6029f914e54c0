"""Proof 2: through `kubectl port-forward` to the API Service, the seed's users get a prediction
from their 14 online features, an unknown user a 404 and a bad body a 422."""

from __future__ import annotations

import httpx
import pytest

from streamflow.features import FEATURE_NAMES
from tests.e2e.conftest import make


@pytest.mark.parametrize("user_id", ["4686-GEFRM", "U0001"])
def test_seed_users_are_predicted_from_14_features(api_url, user_id):
    response = httpx.post(f"{api_url}/predict", json={"user_id": user_id}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user_id
    assert sorted(body["features_used"]) == sorted(FEATURE_NAMES)
    assert len(body["features_used"]) == 14


def test_unknown_user_is_404_with_a_message(api_url):
    response = httpx.post(f"{api_url}/predict", json={"user_id": "no-such-user-e2e"}, timeout=30)
    assert response.status_code == 404
    assert "no-such-user-e2e" in response.text


@pytest.mark.parametrize("body", [{}, {"user_id": ""}, {"user": "U0001"}])
def test_bad_body_is_422(api_url, body):
    response = httpx.post(f"{api_url}/predict", json=body, timeout=30)
    assert response.status_code == 422, response.text


def test_make_traffic_sends_bounded_requests_through_its_own_venv():
    result = make("traffic", "N=60")
    assert result.returncode == 0, result.stdout + result.stderr
    # tools/traffic.py's summary: 60 requests, mostly 200 (a few unknown users: 404), no 5xx
    assert "sent 60 requests" in result.stdout and "200=" in result.stdout
    assert ".build/venv-clients/bin/python -m tools.traffic" in result.stdout
