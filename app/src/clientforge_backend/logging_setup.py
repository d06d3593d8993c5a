"""JSON-lines logging to ``combined.log`` (every level) and ``error.log`` (ERROR and above).

Several gunicorn worker processes append to the same files. The standard library's
``RotatingFileHandler`` loses or duplicates lines when two processes decide to rotate at the same
moment, so both files use ``concurrent_log_handler.ConcurrentRotatingFileHandler``: every write
and every rotation happens under an exclusive ``flock`` on a lock file next to the log
(``.__combined.lock``), and a writer whose file was renamed away by another process notices
(inode check) and reopens the new file before writing. Rotation renames files
(``combined.log`` -> ``combined.log.1`` ...); it never copies and truncates.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from concurrent_log_handler import ConcurrentRotatingFileHandler
from flask import has_request_context, request
from pythonjsonlogger.core import merge_record_extra
from pythonjsonlogger.json import JsonFormatter

from .config import Settings

LOGGER_NAME: Final = "clientforge_backend"
REQUEST_LOGGER_NAME: Final = f"{LOGGER_NAME}.request"
COMBINED_LOG: Final = "combined.log"
ERROR_LOG: Final = "error.log"
LOG_FILE_MODE: Final = 0o640  # group-readable: the log shipper reads through its group
LOG_DIR_MODE: Final = 0o750
UNMATCHED_ROUTE: Final = "<unmatched>"
REQUEST_FIELDS: Final = ("request_id", "tenant", "method", "route", "status", "duration_ms")
# Per-request state kept in the WSGI environ by the request hooks (see app.py).
START_ENV: Final = "clientforge.start"
FINISHED_ENV: Final = "clientforge.finished"
REQUEST_ID_ENV: Final = "clientforge.request_id"
TENANT_ENV: Final = "clientforge.tenant"

# Marks the handlers this module installed, so that a second create_app() replaces them.
_HANDLER_MARK: Final = "_clientforge_backend_handler"


def route_of_current_request() -> str:
    """The Flask URL rule of the current request (never the raw path)."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


class RequestContextFilter(logging.Filter):
    """Adds the request fields to records logged inside a request (``None`` outside one).

    Fields passed explicitly through ``extra=`` win. The same record object goes to both
    handlers, so the lookup happens once per record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        if "request_id" not in attrs:
            if has_request_context():
                environ = request.environ
                attrs["request_id"] = environ.get(REQUEST_ID_ENV)
                attrs["tenant"] = environ.get(TENANT_ENV)
                attrs["method"] = environ.get("REQUEST_METHOD")
                attrs["route"] = route_of_current_request()
            else:
                attrs["request_id"] = attrs["tenant"] = attrs["method"] = attrs["route"] = None
        attrs.setdefault("status", None)
        attrs.setdefault("duration_ms", None)
        return True


def _iso_utc(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line, fixed field order, ISO 8601 UTC timestamps."""

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        attrs = record.__dict__
        log_data["timestamp"] = _iso_utc(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        for field in REQUEST_FIELDS:
            log_data[field] = attrs.get(field)
        log_data["pid"] = record.process
        log_data.update(message_dict)
        merge_record_extra(record, log_data, reserved=self._skip_fields)


def _make_handler(path: Path, settings: Settings, level: int) -> logging.Handler:
    handler = ConcurrentRotatingFileHandler(
        str(path),
        mode="a",
        maxBytes=settings.log_max_bytes,
        backupCount=settings.log_backup_count,
        encoding="utf-8",
        chmod=LOG_FILE_MODE,
    )
    handler.setLevel(level)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestContextFilter())
    setattr(handler, _HANDLER_MARK, True)
    return handler


def configure_logging(settings: Settings) -> logging.Logger:
    """(Re)configure the ``clientforge_backend`` logger tree and return its root logger.

    Logging is process-wide state by nature; calling this again (another ``create_app()``)
    closes and replaces the handlers installed before.
    """
    log_dir = settings.log_dir
    log_dir.mkdir(parents=True, exist_ok=True, mode=LOG_DIR_MODE)
    if not os.access(log_dir, os.W_OK):
        raise PermissionError(f"log directory {log_dir} (BACKEND_LOG_DIR) is not writable")

    logger = logging.getLogger(LOGGER_NAME)
    shutdown_logging(logger)
    logger.setLevel(settings.log_level)
    logger.propagate = False
    logger.addHandler(_make_handler(log_dir / COMBINED_LOG, settings, logging.NOTSET))
    logger.addHandler(_make_handler(log_dir / ERROR_LOG, settings, logging.ERROR))
    return logger


def shutdown_logging(logger: logging.Logger | None = None) -> None:
    """Close and remove the handlers installed by :func:`configure_logging`."""
    target = logger or logging.getLogger(LOGGER_NAME)
    for handler in list(target.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            target.removeHandler(handler)
            handler.close()
