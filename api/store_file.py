"""Which SQLite file the online store reads, and whether it is still the one at its path.

Feast's SQLite store keeps one connection for good: with the file moved away or replaced (a
restore from a backup, a new file moved into place), it would go on reading the old file unseen,
and /ready would say ok. So the API records the file's (device, inode) when it opens the store
and compares it with the file at the configured path before each lookup (one `stat`, cheap
enough for every request). A file rewritten in place keeps its inode: the open connection sees
those writes itself.
"""

from __future__ import annotations

from pathlib import Path

from api.errors import ServiceUnavailable

FileId = tuple[int, int]  # (device, inode)


class StoreFileMissing(ServiceUnavailable):
    """No file at the online store's path."""


class StoreFile:
    """The local online store's file; `path` is None when the store is a server (PostgreSQL),
    and then there is nothing to track."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.opened: FileId | None = None  # the file the open store's connection reads

    def identify(self) -> FileId | None:
        """The file at the path now; None for a server. Raises StoreFileMissing when there is
        none. Call it *before* opening the store: sqlite3 would create an empty file in place of
        a missing one, and that empty file would then stand in for the real store."""
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise StoreFileMissing(f"online store file {self.path} is missing") from None
        return stat.st_dev, stat.st_ino

    def replaced(self) -> bool:
        """True when the file at the path is no longer the one the store opened; raises
        StoreFileMissing when it is gone. False when nothing is tracked (a server, or no store
        open)."""
        opened = self.opened
        return opened is not None and self.identify() != opened
