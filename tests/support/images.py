"""What each image is built from, read from the Dockerfile, .dockerignore and the lock files as a
builder reads them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO_ROOT
from tools.image_tag import context_paths

# The modules each image's processes start from: `python -m api` (uvicorn then imports
# api.main:create_app by name), the chart's `helm test` client; the drift CronJob and the
# bootstrap Job (datagen, train and bootstrap are also run on their own).
IMAGE_ENTRY_POINTS = {
    "api": ("api.__main__", "api.main", "api.smoke"),
    "jobs": (
        "jobs.drift.__main__",
        "jobs.bootstrap",
        "jobs.train",
        "jobs.datagen",
        "jobs.retrain",
        "jobs.performance",
        "jobs.history",
    ),
}

# Modules an image's processes load although no import statement names them, so the import
# graph cannot show them: the model artifact is a pickled scikit-learn estimator (unpickled by
# streamflow/model.py in both images); SQLAlchemy loads the psycopg 3 driver that
# streamflow/settings.py names in the database URL; uvicorn picks uvloop and httptools when they
# are installed (uvicorn[standard]), and the API's throughput was measured with them.
RUNTIME_IMPORTS = {
    "api": ("sklearn", "psycopg", "uvloop", "httptools"),
    "jobs": ("sklearn", "psycopg"),
}

# Where the virtual environment lives in the images (the runtime stage puts it on PATH)
VENV = "/opt/venv"


def image_lock(image: str) -> Path:
    """The hashed lock an image installs: `make lock` compiles one per image."""
    return REPO_ROOT / f"requirements-{image}.lock"


@dataclass
class Stage:
    """One build stage: its base (a stage name or an image), what it COPYs from the build context
    and from other stages, and its RUN commands."""

    base: str
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (context sources, destination)
    copies_from: list[tuple[str, list[str], str]] = field(default_factory=list)  # (stage, sources, destination)
    runs: list[str] = field(default_factory=list)


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions, each on one line (continuations joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") and not pending:
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    return [line.strip() for line in lines if line.strip()]


def dockerfile_stages(dockerfile: Path = REPO_ROOT / "Dockerfile") -> dict[str, Stage]:
    """Each stage of the Dockerfile, by name."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical_lines(dockerfile.read_text()):
        if match := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)$", line, re.IGNORECASE):
            current = stages[match[2]] = Stage(base=match[1])
        elif current is None:
            continue
        elif match := re.match(r"COPY\s+(.+)", line, re.IGNORECASE):
            words = match[1].split()
            flags = {w.split("=", 1)[0]: w.split("=", 1)[-1] for w in words if w.startswith("--")}
            *sources, destination = [w for w in words if not w.startswith("--")]
            sources = [s.rstrip("/") for s in sources]
            if "--from" in flags:
                current.copies_from.append((flags["--from"], sources, destination))
            else:
                current.copies.append((sources, destination))
        elif match := re.match(r"RUN\s+(.+)", line, re.IGNORECASE):
            current.runs.append(match[1])
    return stages


def stage_chain(stage: str, stages: dict[str, Stage]) -> list[str]:
    """The stage and the stages below it, nearest first (the chain ends at an image)."""
    chain: list[str] = []
    current: str | None = stage
    while current in stages:
        chain.append(current)
        current = stages[current].base
    return chain


def context_allowlist(dockerignore: Path = REPO_ROOT / ".dockerignore") -> set[str]:
    """The paths a `*` + `!path` .dockerignore lets into the build context (what `make images`
    tags by, tools/image_tag.py)."""
    return set(context_paths(dockerignore))


def context_copies(stages: dict[str, Stage] | None = None) -> set[str]:
    """Every build-context path that any stage COPYs."""
    stages = dockerfile_stages() if stages is None else stages
    return {source for stage in stages.values() for sources, _ in stage.copies for source in sources}


def image_copies(image: str) -> list[str]:
    """Every build-context path that ends up in `image`, through its stage and the stages below it."""
    stages = dockerfile_stages()
    copies: list[str] = []
    for stage in stage_chain(image, stages):
        copies = [source for sources, _ in stages[stage].copies for source in sources] + copies
    return copies


def image_packages(image: str) -> set[str]:
    """The first-party Python packages copied into `image` (each must pass .dockerignore)."""
    allowed = context_allowlist()
    copies = image_copies(image)
    assert set(copies) <= allowed, f"{image} copies {sorted(set(copies) - allowed)}, which .dockerignore keeps out"
    return {path for path in copies if (REPO_ROOT / path / "__init__.py").exists()}


def installed_lock(image: str) -> str:
    """The build-context lock file whose packages end up in `image`'s virtual environment: the
    image copies the venv from a build stage, which fills it with `uv pip sync --require-hashes`
    from a lock it copied in from the context."""
    stages = dockerfile_stages()
    venvs = [
        source_stage
        for stage in stage_chain(image, stages)
        for source_stage, sources, destination in stages[stage].copies_from
        if sources == [VENV] and destination.rstrip("/") == VENV
    ]
    assert len(venvs) == 1, f"{image} must copy {VENV} from exactly one build stage, not {venvs}"
    builders = stage_chain(venvs[0], stages)
    syncs = [
        shlex.split(command)
        for stage in builders
        for run in stages[stage].runs
        for command in run.split("&&")
        if command.split()[:3] == ["uv", "pip", "sync"]
    ]
    assert len(syncs) == 1, f"{venvs[0]} must run exactly one `uv pip sync`, not {syncs}"
    (sync,) = syncs
    assert "--require-hashes" in sync, f"{venvs[0]} installs without --require-hashes: {sync}"
    target = sync[-1]
    copied = [sources for stage in builders for sources, destination in stages[stage].copies if destination == target]
    assert len(copied) == 1 and len(copied[0]) == 1, f"{target} must be copied in once, from one file: {copied}"
    return copied[0][0]


def lock_pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """The packages a `uv pip compile --generate-hashes` lock pins: name -> (version, hashes)."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    name = None
    for line in lock.read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", line):
            name = normalize(match[1])
            pins[name] = (match[3], frozenset())
        if name and (hashes := re.findall(r"--hash=(\S+)", line)):
            version, known = pins[name]
            pins[name] = (version, known | set(hashes))
    return pins


def normalize(distribution: str) -> str:
    """A distribution's name as lock files and indexes compare it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()
