"""`pip install .` installs the core and both services, and nothing of the tooling or the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

SHIPPED = ("streamflow", "api", "jobs")


def test_the_wheel_holds_the_core_and_the_services_only(tmp_path: Path) -> None:
    uv = os.environ.get("UV_BIN") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found: run the tests through `make test`, which installs it")
    source = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info next to the sources
    source.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    for package in (*SHIPPED, "tools", "tests"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("streamflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == set(SHIPPED)
    for package in SHIPPED:  # every module of each package, not just its __init__
        expected = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / package).rglob("*.py")}
        assert expected <= set(names), sorted(expected - set(names))
