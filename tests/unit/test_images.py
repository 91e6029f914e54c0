"""Each image carries only the PyPI packages its process needs, and everything it imports.

The API and jobs images install different hashed locks (requirements-api.lock,
requirements-jobs.lock), compiled by `make lock` from pyproject.toml's core dependencies plus the
image's extra, constrained to requirements-dev.lock (the venv the tests run in). What the
processes import is read from the import graph (grimp, external packages included) and mapped to
distributions through the dev venv's metadata; what an image installs is read from the Dockerfile.
No Docker engine is needed.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from packaging.requirements import Requirement

from tests.support.images import (
    IMAGE_ENTRY_POINTS,
    RUNTIME_IMPORTS,
    context_allowlist,
    context_copies,
    image_lock,
    installed_lock,
    lock_pins,
    normalize,
)
from tests.support.processes import REPO_ROOT

FIRST_PARTY = ("streamflow", "api", "jobs", "tools")
# The load clients a checkout runs against a deployed API (`make traffic`, `make soak`)
CLIENT_ENTRY_POINTS = ("tools.traffic", "tools.soak")
LOCKS = {name: REPO_ROOT / f"requirements-{name}.lock" for name in (*IMAGE_ENTRY_POINTS, "dev")}
# What only the drift job needs, and must not weigh on the API image
DRIFT_ONLY = {"evidently", "kubernetes", "plotly", "statsmodels", "litestar"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*FIRST_PARTY, include_external_packages=True, cache_dir=None)


@pytest.fixture(scope="module")
def distributions() -> dict[str, set[str]]:
    """Top-level import name -> the distributions (normalized) that provide it, in the dev venv."""
    return {
        module: {normalize(d) for d in names} for module, names in importlib.metadata.packages_distributions().items()
    }


def external_imports(graph: grimp.ImportGraph, entry_points: tuple[str, ...]) -> dict[str, set[str]]:
    """Third-party top-level modules imported by the first-party modules the entry points reach
    (directly or not), each with the modules that import it."""
    reached: set[str] = set()
    for entry in entry_points:
        reached |= {entry} | graph.find_upstream_modules(entry)
    imported: dict[str, set[str]] = {}
    for module in reached:
        if module.split(".")[0] not in FIRST_PARTY:
            continue
        for name in graph.find_modules_directly_imported_by(module):
            top = name.split(".")[0]
            if top not in FIRST_PARTY and top not in sys.stdlib_module_names:
                imported.setdefault(top, set()).add(module)
    return imported


def declared(*extras: str) -> dict[str, Requirement]:
    """pyproject.toml's requirements: the core's `dependencies` plus the named extras (an extra
    naming the project itself, as `dev` does, is expanded), by normalized name."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements: dict[str, Requirement] = {}
    pending = list(project["dependencies"]) + [r for extra in extras for r in project["optional-dependencies"][extra]]
    while pending:
        requirement = Requirement(pending.pop())
        if normalize(requirement.name) == normalize(project["name"]):
            pending += [r for extra in requirement.extras for r in project["optional-dependencies"][extra]]
        else:
            requirements[normalize(requirement.name)] = requirement
    return requirements


def providers(module: str, distributions: dict[str, set[str]]) -> set[str]:
    assert module in distributions, f"{module} is imported but no installed distribution provides it"
    return distributions[module]


@pytest.mark.parametrize("image", IMAGE_ENTRY_POINTS)
def test_each_image_lock_provides_what_its_processes_import(
    graph: grimp.ImportGraph, distributions: dict[str, set[str]], image: str
) -> None:
    """Every third-party module the image's processes import is declared for it in pyproject.toml
    (the core's dependencies or the image's extra) and pinned in the image's lock; so are the
    modules loaded by name (RUNTIME_IMPORTS), through whichever requirement brings them."""
    imported = external_imports(graph, IMAGE_ENTRY_POINTS[image])
    assert {"feast", "pandas"} <= set(imported), "the graph must see the core's imports"
    requirements = declared(image)
    undeclared = {
        module: sorted(importers)
        for module, importers in imported.items()
        if not providers(module, distributions) & set(requirements)
    }
    assert undeclared == {}, f"imported by the {image} image's modules, not declared for it in pyproject.toml"
    pinned = lock_pins(image_lock(image))
    unlocked = sorted(
        module for module in {*imported, *RUNTIME_IMPORTS[image]} if not providers(module, distributions) & set(pinned)
    )
    assert unlocked == [], f"the {image} image's processes import these, but {image_lock(image).name} lacks them"


def test_the_clients_extra_provides_what_the_load_clients_import(
    graph: grimp.ImportGraph, distributions: dict[str, set[str]]
) -> None:
    """`make traffic` and `make soak` need nothing but the `clients` extra (core modules they use
    included)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    clients = {normalize(Requirement(r).name) for r in project["optional-dependencies"]["clients"]}
    imported = external_imports(graph, CLIENT_ENTRY_POINTS)
    assert "httpx" in imported
    missing = {m: sorted(by) for m, by in imported.items() if not providers(m, distributions) & clients}
    assert missing == {}, "the load clients import these, which the `clients` extra does not declare"


def test_the_api_image_carries_no_drift_job_libraries() -> None:
    api = set(lock_pins(image_lock("api")))
    assert api & DRIFT_ONLY == set(), f"{image_lock('api').name} pins drift-job libraries"
    # and the drift job does get them, so the names above are spelled as the locks spell them
    assert {"evidently", "kubernetes", "plotly"} <= set(lock_pins(image_lock("jobs")))


def test_a_package_locked_twice_has_one_version_and_the_same_hashes() -> None:
    """The images run the versions the tests run: each image lock is a subset of the dev lock, so
    a package pinned in two locks is pinned alike."""
    pins = {name: lock_pins(path) for name, path in LOCKS.items()}
    for first, second in itertools.combinations(pins, 2):
        differ = {
            package: (pins[first][package], pins[second][package])
            for package in pins[first].keys() & pins[second].keys()
            if pins[first][package] != pins[second][package]
        }
        assert differ == {}, f"{first} and {second} locks pin these differently"
    for image in IMAGE_ENTRY_POINTS:
        assert set(pins[image]) <= set(pins["dev"]), f"{image} lock pins what the dev venv lacks"
        assert all(hashes for _, hashes in pins[image].values()), f"{image} lock has a package without hashes"


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_pins_what_pyproject_declares(lock: str) -> None:
    """A lock compiled from the current pyproject.toml (`make lock` after every change to it):
    each requirement of the core and of the lock's extra(s) is pinned at a version it allows."""
    requirements = declared(lock)
    pins = lock_pins(LOCKS[lock])
    wrong = {
        name: (str(requirement.specifier), pins.get(name, (None,))[0])
        for name, requirement in requirements.items()
        if name not in pins or not requirement.specifier.contains(pins[name][0], prereleases=True)
    }
    assert wrong == {}, f"{LOCKS[lock].name} is stale against pyproject.toml: run make lock"
    header = LOCKS[lock].read_text().splitlines()[1]
    assert "--generate-hashes" in header and f"--extra {lock}" in header
    if lock != "dev":
        assert "-c requirements-dev.lock" in header, "an image lock is constrained to the dev lock"


@pytest.mark.parametrize("lock", LOCKS)
def test_no_lock_names_a_package_index(lock: str) -> None:
    text = LOCKS[lock].read_text()
    assert "://" not in text
    assert not any(option in text for option in ("--index-url", "--extra-index-url", "--find-links", "--trusted-host"))


@pytest.mark.parametrize("image", IMAGE_ENTRY_POINTS)
def test_each_image_installs_its_own_lock(image: str) -> None:
    """The Dockerfile stage the image's /opt/venv comes from syncs, with hashes required, the lock
    compiled for that image (and .dockerignore lets that lock in)."""
    lock = installed_lock(image)
    assert lock == image_lock(image).name
    assert lock in context_allowlist()


def test_the_build_context_holds_exactly_what_the_dockerfile_copies() -> None:
    copies = context_copies()
    assert copies == context_allowlist()
    assert all((REPO_ROOT / path).exists() for path in copies), "the Dockerfile copies a path the repository lacks"
    assert not any(Path(path).name == "requirements-dev.lock" for path in copies)


def test_the_clients_lock_pins_the_clients_extra_alone() -> None:
    """`make traffic` syncs requirements-clients.lock into its own venv: the `clients` extra and what
    it pulls in, at the dev lock's versions and hashes, without the core's heavy dependencies."""
    lock = REPO_ROOT / "requirements-clients.lock"
    pins = lock_pins(lock)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in map(Requirement, project["optional-dependencies"]["clients"]):
        name = normalize(requirement.name)
        assert name in pins and requirement.specifier.contains(pins[name][0]), f"{name}: run make lock"
    assert not {"feast", "pandas", "fastapi", "evidently"} & set(pins)
    dev = lock_pins(LOCKS["dev"])
    assert {name: pin for name, pin in pins.items() if dev.get(name) != pin} == {}
    assert "://" not in lock.read_text() and all(hashes for _, hashes in pins.values())
