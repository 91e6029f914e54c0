"""Bad settings end a process with one line naming the variable to fix, never a traceback."""

from __future__ import annotations

import pytest

from streamflow import settings as settings_module
from streamflow.drift import ExitCode


def test_a_service_link_variable_is_named_with_its_value(monkeypatch, capsys):
    # what the kubelet injected for a Service named streamflow-api before enableServiceLinks: false
    monkeypatch.setenv("STREAMFLOW_API_PORT", "tcp://10.96.13.89:8000")
    monkeypatch.setenv("STREAMFLOW_DRIFT_THRESHOLD", "high")
    settings_module.get_settings.cache_clear()
    with pytest.raises(SystemExit) as ended:
        settings_module.settings_or_exit("bootstrap")
    settings_module.get_settings.cache_clear()
    assert ended.value.code == ExitCode.USAGE
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and message.startswith("bootstrap failed (bad settings): ")
    assert "STREAMFLOW_API_PORT='tcp://10.96.13.89:8000': Input should be a valid integer" in message
    assert "STREAMFLOW_DRIFT_THRESHOLD='high'" in message


def test_good_settings_pass_through(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_API_PORT", "8123")
    settings_module.get_settings.cache_clear()
    try:
        assert settings_module.settings_or_exit("api").api_port == 8123
    finally:
        settings_module.get_settings.cache_clear()
