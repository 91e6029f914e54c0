"""What each image is built from, read from the Dockerfile and .dockerignore as a builder reads them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.processes import REPO_ROOT

# The modules each image's processes start from: `python -m api` (uvicorn then imports
# api.main:create_app by name), the chart's `helm test` client; the drift CronJob and the
# bootstrap Job (datagen, train and bootstrap are also run on their own).
IMAGE_ENTRY_POINTS = {
    "api": ("api.__main__", "api.main", "api.smoke"),
    "jobs": ("jobs.drift.__main__", "jobs.bootstrap", "jobs.train", "jobs.datagen"),
}


def dockerfile_stages(dockerfile: Path = REPO_ROOT / "Dockerfile") -> dict[str, tuple[str, list[str]]]:
    """Each stage's base (a stage name or an image) and the build-context paths it COPYs in."""
    stages: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in dockerfile.read_text().splitlines():
        if match := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match[2]
            stages[current] = (match[1], [])
        elif (match := re.match(r"COPY\s+(?!--from)(.+)", line, re.IGNORECASE)) and current:
            *sources, _destination = match[1].split()
            stages[current][1].extend(s.rstrip("/") for s in sources if not s.startswith("--"))
    return stages


def context_allowlist(dockerignore: Path = REPO_ROOT / ".dockerignore") -> set[str]:
    """The paths a `*` + `!path` .dockerignore lets into the build context."""
    lines = [line.strip() for line in dockerignore.read_text().splitlines()]
    assert "*" in lines, ".dockerignore must start from excluding everything"
    return {line[1:].rstrip("/") for line in lines if line.startswith("!")}


def image_copies(image: str) -> list[str]:
    """Every build-context path that ends up in `image`, through its stage and the stages below it."""
    stages = dockerfile_stages()
    copies: list[str] = []
    stage: str | None = image
    while stage in stages:
        base, paths = stages[stage]
        copies = paths + copies
        stage = base
    return copies


def image_packages(image: str) -> set[str]:
    """The first-party Python packages copied into `image` (each must pass .dockerignore)."""
    allowed = context_allowlist()
    copies = image_copies(image)
    assert set(copies) <= allowed, f"{image} copies {sorted(set(copies) - allowed)}, which .dockerignore keeps out"
    return {path for path in copies if (REPO_ROOT / path / "__init__.py").exists()}
