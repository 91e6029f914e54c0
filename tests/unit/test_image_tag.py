"""`make images` tags by content (tools/image_tag.py): the commit, plus a hash of the build
context's uncommitted changes. Each case runs on a small git repository of its own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tools.image_tag import image_tag

DOCKERIGNORE = "*\n!requirements-api.lock\n!streamflow/\n**/__pycache__\n"


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@invalid", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".dockerignore").write_text(DOCKERIGNORE)
    (tmp_path / ".gitignore").write_text("__pycache__/\n*.local\n")
    (tmp_path / "streamflow").mkdir()
    (tmp_path / "streamflow" / "core.py").write_text("VALUE = 1\n")
    (tmp_path / "requirements-api.lock").write_text("fastapi==0.165.0\n")
    (tmp_path / "README.md").write_text("docs\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_a_clean_tree_is_tagged_by_its_commit(repo: Path) -> None:
    assert image_tag(repo) == "g" + git(repo, "rev-parse", "--short=12", "HEAD").strip()


def test_a_change_to_a_tracked_file_of_the_context_changes_the_tag(repo: Path) -> None:
    clean = image_tag(repo)
    (repo / "streamflow" / "core.py").write_text("VALUE = 2\n")
    first = image_tag(repo)
    assert re.fullmatch(re.escape(clean) + r"-dirty-[0-9a-f]{12}", first)
    assert image_tag(repo) == first, "the same tree gives the same tag"
    (repo / "streamflow" / "core.py").write_text("VALUE = 3\n")
    assert image_tag(repo) not in {clean, first}
    (repo / "streamflow" / "core.py").write_text("VALUE = 1\n")
    assert image_tag(repo) == clean, "back to the committed content, back to the commit's tag"


def test_an_untracked_file_of_the_context_changes_the_tag_and_its_content_counts(repo: Path) -> None:
    clean = image_tag(repo)
    (repo / "streamflow" / "new.py").write_text("A = 1\n")
    first = image_tag(repo)
    (repo / "streamflow" / "new.py").write_text("A = 2\n")
    assert len({clean, first, image_tag(repo)}) == 3


def test_ignored_files_and_files_outside_the_context_leave_the_tag_alone(repo: Path) -> None:
    clean = image_tag(repo)
    (repo / "streamflow" / "__pycache__").mkdir()
    (repo / "streamflow" / "__pycache__" / "core.pyc").write_bytes(b"\0compiled")
    (repo / "streamflow" / "settings.local").write_text("ignored by git\n")
    (repo / "README.md").write_text("docs changed: not in the image\n")
    (repo / "notes.txt").write_text("untracked, outside the context\n")
    assert image_tag(repo) == clean


def test_a_new_commit_gives_a_new_clean_tag(repo: Path) -> None:
    clean = image_tag(repo)
    (repo / "streamflow" / "core.py").write_text("VALUE = 2\n")
    git(repo, "commit", "-q", "-am", "second")
    assert image_tag(repo) != clean and "dirty" not in image_tag(repo)


def test_a_commit_outside_the_context_keeps_the_tag(repo: Path) -> None:
    """A commit of docs or tests builds the same images: no new tag, no rebuild, no rollout."""
    before = image_tag(repo)
    (repo / "README.md").write_text("more docs\n")
    git(repo, "commit", "-q", "-am", "docs only")
    assert image_tag(repo) == before
    (repo / "streamflow" / "core.py").write_text("VALUE = 5\n")
    git(repo, "commit", "-q", "-am", "code")
    assert image_tag(repo) == "g" + git(repo, "rev-parse", "--short=12", "HEAD").strip() != before
