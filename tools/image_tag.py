"""The tag `make images` gives the API and jobs images: named by their content, never reused.

`g<commit>` (the short hash of the last commit that changed the build context) when the context is
as committed, otherwise
`g<commit>-dirty-<hash12>`: the first 12 hex digits of a SHA-256 over the context's changes since
HEAD (the diff of tracked files and the path and bytes of every untracked file that git does not
ignore). The build context is what .dockerignore lets in (its `!` lines: the two image locks,
streamflow/, api/, jobs/); a change elsewhere (docs, tests) does not change the images, nor the tag.
So a new edit gives a new tag (the cluster cannot keep running an old image under a reused name,
as it would with `IfNotPresent` and a fixed tag) and the same tree always gives the same tag.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def context_paths(dockerignore: Path) -> list[str]:
    """The paths a `*` + `!path` .dockerignore lets into the build context."""
    lines = [line.strip() for line in dockerignore.read_text().splitlines()]
    paths = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    if "*" not in lines or not paths:
        raise ValueError(f"{dockerignore} must exclude everything (`*`) and list the context with `!path` lines")
    return paths


def image_tag(repo: Path = REPO_ROOT) -> str:
    paths = context_paths(repo / ".dockerignore")
    # the last commit that changed the context, not HEAD: a commit of docs or tests rebuilds nothing
    commit = _git(repo, "log", "-1", "--format=%h", "--abbrev=12", "--", *paths).decode().strip()
    diff = _git(repo, "diff", "HEAD", "--binary", "--", *paths)
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", *paths).split(b"\0")
    if not diff and not any(untracked):
        return f"g{commit}"
    digest = hashlib.sha256(diff)
    for name in sorted(filter(None, untracked)):
        digest.update(b"\0" + name + b"\0" + (repo / name.decode()).read_bytes())
    return f"g{commit}-dirty-{digest.hexdigest()[:12]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.image_tag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="the git work tree (default: this one)")
    print(image_tag(parser.parse_args(argv).repo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
