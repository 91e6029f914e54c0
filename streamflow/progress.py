"""Progress for long work: a bar on a terminal, structured log records everywhere else."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from streamflow.logs import log_event


class Progress:
    """Counts units of work; reports each 10 % as a log record when stderr is not a terminal."""

    def __init__(self, logger: logging.Logger, step: str, total: int, unit: str) -> None:
        self._logger, self._step, self._total, self._unit = logger, step, total, unit
        self._done = 0
        self._next_report = 0.1
        self._bar = tqdm(total=total, desc=step, unit=unit) if sys.stderr.isatty() else None

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        fraction = self._done / self._total if self._total else 1.0
        if fraction >= self._next_report or self._done >= self._total:
            log_event(
                self._logger,
                "progress",
                step=self._step,
                done=self._done,
                total=self._total,
                unit=self._unit,
                percent=round(100 * fraction, 1),
            )
            while self._next_report <= fraction:
                self._next_report += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def progress(logger: logging.Logger, step: str, total: int, unit: str = "rows") -> Iterator[Progress]:
    bar = Progress(logger, step, total, unit)
    try:
        yield bar
    finally:
        bar.close()
