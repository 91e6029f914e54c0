"""The layers hold: tools above the services, the services above the core, and each image carries
only what its process imports.

The contracts live in pyproject.toml ([tool.importlinter]) and run through import-linter as
`make lint` runs them; a copy of the tree with a wrong import planted in it must fail them.
The import graph is also read directly (grimp, import-linter's own graph) so that weakening the
contracts in pyproject.toml cannot make these tests pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.support.images import IMAGE_ENTRY_POINTS, image_packages
from tests.support.processes import REPO_ROOT

PACKAGES = ("streamflow", "api", "jobs", "tools")
SERVICES = ("api", "jobs")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo", "pyproject.toml"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def imports_between(graph: grimp.ImportGraph, importer: str, imported: str) -> list[str]:
    return sorted(
        f"{i['importer']} -> {i['imported']}"
        for i in graph.find_matching_direct_imports(import_expression=f"{importer}.** -> {imported}.**")
    ) + sorted(
        f"{i['importer']} -> {i['imported']}"
        for i in graph.find_matching_direct_imports(import_expression=f"{importer}.** -> {imported}")
    )


def test_the_contracts_hold_on_the_tree() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("streamflow", "tools"),
        ("streamflow", "api"),
        ("streamflow", "jobs"),
        ("api", "tools"),
        ("jobs", "tools"),
        ("api", "jobs"),
        ("jobs", "api"),
    ],
)
def test_no_import_goes_up_or_across(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    assert imports_between(graph, importer, imported) == []


# A planted import per contract: the module that gets it, the line, what the failure names
PLANTED = {
    "core imports tooling": ("streamflow/settings.py", "import tools.toolchain", "Layers"),
    "core imports a service": ("streamflow/features.py", "import api.schemas", "Layers"),
    "service imports tooling": ("jobs/train.py", "from tools import traffic", "Layers"),
    "API imports a job": ("api/schemas.py", "import jobs.drift.decision", "Layers"),
    "API imports Evidently": ("api/serving.py", "import evidently", "drift job's libraries"),
    "core imports FastAPI": ("streamflow/db.py", "import fastapi", "no service's own libraries"),
}


@pytest.mark.parametrize("case", PLANTED)
def test_a_planted_wrong_import_breaks_a_contract(case: str, tmp_path: Path) -> None:
    module, line, contract = PLANTED[case]
    for package in (*PACKAGES, "tests"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # planted by {case!r}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [text for text in result.stdout.splitlines() if text.endswith("BROKEN")]
    assert any(contract in name for name in broken), result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


def reached_from(graph: grimp.ImportGraph, image: str) -> set[str]:
    """First-party modules that the image's entry points import, directly or not."""
    reached: set[str] = set()
    for entry in IMAGE_ENTRY_POINTS[image]:
        reached |= {entry} | graph.find_upstream_modules(entry)
    return {m for m in reached if m.split(".")[0] in PACKAGES}


def unreached(graph: grimp.ImportGraph, package: str, reached: set[str]) -> list[str]:
    """Modules of `package` outside `reached` (a package counts as reached through its modules)."""
    modules = graph.find_descendants(package) | {package}
    return sorted(m for m in modules - reached if not any(r.startswith(m + ".") for r in reached))


@pytest.mark.parametrize("image", IMAGE_ENTRY_POINTS)
def test_each_image_carries_exactly_what_its_processes_import(graph: grimp.ImportGraph, image: str) -> None:
    """The image's own Python packages (from the Dockerfile's COPY lines and .dockerignore) are the
    ones its entry points reach through imports, and all of its service package is reached."""
    shipped = image_packages(image)
    reached = reached_from(graph, image)
    assert {m.split(".")[0] for m in reached} == shipped == {"streamflow", image}
    assert unreached(graph, image, reached) == [], f"the {image} image ships modules its processes never import"


def test_every_core_module_runs_in_an_image(graph: grimp.ImportGraph) -> None:
    """The core holds only what a service runs: tooling hidden in it would show up here."""
    reached = set().union(*(reached_from(graph, image) for image in IMAGE_ENTRY_POINTS))
    assert unreached(graph, "streamflow", reached) == []
