"""Files that readers may open at any moment (reports, the model, Feast sources, the local
status ConfigMap) are written through a temporary sibling renamed into place."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write` on a hidden temporary sibling of `path`, then rename it to `path`: a reader
    sees the previous file or the whole new one, never a half-written one."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
