"""chart-testing (`ct lint`, tools/chart_testing.py) passes on the chart and each ci/*-values.yaml,
and fails on a copy of the chart broken in the ways it exists to catch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.chart import CHART
from tools import chart_testing


def test_ct_lint_passes_on_the_chart_and_every_ci_values_file() -> None:
    result = chart_testing.lint()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for values in sorted((CHART / "ci").glob("*-values.yaml")):
        assert f'ci/{values.name}"' in result.stdout, values.name
    assert "All charts linted successfully" in result.stdout


BROKEN = {
    # a value of the wrong type: values.schema.json refuses it (helm lint)
    "schema": ("ci/minimal-values.yaml", "api:\n  replicas: two\n", "got string, want integer"),
    # a key twice: YAML parsers keep the last silently, yamllint refuses it
    "duplicate key": ("ci/hpa-values.yaml", "api:\n  replicas: 1\napi:\n  replicas: 2\n", "key-duplicates"),
    # Chart.yaml against ct's schema (yamale): a maintainer without a name
    "chart schema": ("Chart.yaml", "maintainers:\n  - url: https://streamflow.invalid\n", "maintainers.0.name"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_ct_lint_fails_on_a_broken_copy(case: str, tmp_path: Path) -> None:
    relative, broken, expected = BROKEN[case]
    copy = tmp_path / "streamflow"
    shutil.copytree(CHART, copy)
    target = copy / relative
    if relative == "Chart.yaml":
        chart_yaml = target.read_text()
        target.write_text(chart_yaml[: chart_yaml.index("maintainers:")] + broken)
    else:
        target.write_text(broken)
    result = chart_testing.lint(copy)
    assert result.returncode != 0, result.stdout[-2000:]
    assert expected in result.stdout + result.stderr, result.stdout[-2000:]
