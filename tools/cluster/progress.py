"""Progress on the terminal: what the node is building or starting, and the elapsed time.

Every line carries the time since the command started; a step that runs long (a Go build) prints
a "still ..." line every TICK seconds so a silent terminal never means a hung one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
TICK = 30.0
_START = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - _START


def say(message: str) -> None:
    """One progress line: `[  12.3s] message`."""
    print(f"[{elapsed():7.1f}s] {message}", file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


@contextmanager
def step(what: str) -> Iterator[None]:
    """Announce `what`, tick while it runs, and say how long it took (or that it failed)."""
    say(f"{what} …")
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(TICK):
            say(f"  still {what} ({duration(time.monotonic() - started)})")

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    except BaseException:
        say(f"  FAILED: {what} after {duration(time.monotonic() - started)}")
        raise
    finally:
        done.set()
        ticker.join()
    say(f"  done: {what} ({duration(time.monotonic() - started)})")


def timed(what: str, function: Callable[[], T]) -> T:
    """function() inside step(what): for cached builders that are instant when warm."""
    with step(what):
        return function()
