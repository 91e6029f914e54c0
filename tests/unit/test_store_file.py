"""The online store's file is tracked by (device, inode): a file replaced or moved away under
the open store is noticed, a file written in place is the same file."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.store_file import StoreFile, StoreFileMissing


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreFile]:
    path = tmp_path / "online_store.db"
    path.write_bytes(b"the store")
    tracked = StoreFile(path)
    tracked.opened = tracked.identify()
    # held open as the store's SQLite connection holds it: an inode in use is not reused by a
    # file created after the old one was deleted
    with path.open("rb"):
        yield tracked


def test_the_same_file_is_not_replaced(store: StoreFile) -> None:
    assert store.path is not None
    with store.path.open("ab") as file:  # written in place: the open connection sees it
        file.write(b" and more")
    assert store.replaced() is False


def test_a_file_restored_from_a_backup_is_a_replacement(store: StoreFile, tmp_path: Path) -> None:
    assert store.path is not None
    backup = shutil.copy2(store.path, tmp_path / "backup.db")
    store.path.unlink()
    shutil.copy2(backup, store.path)  # same bytes, another file
    assert store.replaced() is True


def test_a_file_moved_into_place_is_a_replacement(store: StoreFile, tmp_path: Path) -> None:
    assert store.path is not None
    new = tmp_path / "new.db"
    new.write_bytes(b"the store")
    os.replace(new, store.path)
    assert store.replaced() is True


def test_a_file_moved_away_is_missing_and_nothing_is_created(store: StoreFile, tmp_path: Path) -> None:
    assert store.path is not None
    store.path.rename(tmp_path / "moved-away.db")
    with pytest.raises(StoreFileMissing, match=r"online store file .*online_store\.db is missing"):
        store.replaced()
    with pytest.raises(StoreFileMissing):
        store.identify()
    assert not store.path.exists()


def test_nothing_is_tracked_for_a_server_or_before_a_store_is_open(tmp_path: Path) -> None:
    server = StoreFile(None)
    assert server.identify() is None and server.replaced() is False
    not_open = StoreFile(tmp_path / "not-there.db")
    assert not_open.replaced() is False  # no store open: nothing to compare, no stat
