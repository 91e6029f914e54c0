"""Logging for every StreamFlow process: plain text for people, JSON lines for log collectors.

Structured fields go in `extra={"fields": {...}}`; the JSON formatter puts them at the top
level of the record, the plain formatter appends them as key=value pairs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


def configure_logging(level: str = "INFO", fmt: Literal["plain", "json"] = "plain") -> None:
    """Send logs to stderr (stdout is kept for results such as the drift decision line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library deprecation warnings go through logging, shown only when debugging.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if level == "DEBUG" else logging.ERROR)
    # Libraries that are chatty at INFO about their own internals.
    for noisy in ("feast", "evidently", "urllib3", "kubernetes", "httpx", "numexpr"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def log_event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type name when it has none): the
    one-line reasons StreamFlow logs and returns never carry a driver's multi-line dump."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
