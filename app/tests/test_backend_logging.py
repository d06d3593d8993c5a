"""JSON-lines logs: fields, files, levels, permissions, rotation."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask

from clientforge_backend.config import Settings
from clientforge_backend.logging_setup import configure_logging, shutdown_logging

Lines = Callable[[Path], list[dict[str, Any]]]
REQUIRED = (
    "timestamp",
    "level",
    "logger",
    "message",
    "request_id",
    "tenant",
    "method",
    "route",
    "status",
    "duration_ms",
)


def _check_timestamp(value: str) -> None:
    assert value.endswith("Z")
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None and parsed.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


def test_request_line_fields(app: Flask, log_dir: Path, logs: Lines) -> None:
    app.test_client().get(
        "/api/v1/contacts/2", headers={"x-request-id": "req-42", "x-tenant-id": "acme"}
    )
    lines = [line for line in logs(log_dir / "combined.log") if line["route"] is not None]
    assert len(lines) == 1
    line = lines[0]
    assert list(line)[: len(REQUIRED)] == list(REQUIRED)
    _check_timestamp(line["timestamp"])
    assert line["level"] == "INFO"
    assert line["logger"] == "clientforge_backend.request"
    assert line["message"] == "GET /api/v1/contacts/2 200"
    assert line["request_id"] == "req-42"
    assert line["tenant"] == "acme"
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/contacts/<int:contact_id>"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_every_line_is_json_with_all_fields(app: Flask, log_dir: Path, logs: Lines) -> None:
    client = app.test_client()
    client.get("/api/v1/health")
    client.get("/nope")
    client.get("/metrics")
    lines = logs(log_dir / "combined.log")
    assert len(lines) == 4  # startup line + one line per request, /metrics included
    for line in lines:
        assert set(REQUIRED) <= set(line)
        _check_timestamp(line["timestamp"])
    assert [line["route"] for line in lines[1:]] == ["/api/v1/health", "<unmatched>", "/metrics"]
    assert lines[2]["status"] == 404


def test_app_log_inside_request_gets_request_fields(app: Flask, log_dir: Path, logs: Lines) -> None:
    @app.get("/api/v1/with-log")
    def with_log() -> str:
        logging.getLogger("clientforge_backend.api").warning("careful", extra={"thing": 3})
        return "ok"

    app.test_client().get("/api/v1/with-log", headers={"x-request-id": "rid-7"})
    warning = next(line for line in logs(log_dir / "combined.log") if line["level"] == "WARNING")
    assert warning["message"] == "careful"
    assert warning["request_id"] == "rid-7"
    assert warning["route"] == "/api/v1/with-log"
    assert warning["thing"] == 3


def test_error_log_only_gets_errors(app: Flask, log_dir: Path, logs: Lines) -> None:
    log = logging.getLogger("clientforge_backend.api")
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    log.error("error line")
    log.critical("critical line")
    app.test_client().get("/api/v1/health")
    errors = logs(log_dir / "error.log")
    assert [line["message"] for line in errors] == ["error line", "critical line"]
    assert {line["level"] for line in errors} == {"ERROR", "CRITICAL"}
    combined = [line["message"] for line in logs(log_dir / "combined.log")]
    assert "debug line" not in combined  # BACKEND_LOG_LEVEL=INFO
    assert {"info line", "warning line", "error line", "critical line"} <= set(combined)


def test_log_level_setting(make_app: Callable[..., Flask], log_dir: Path, logs: Lines) -> None:
    app = make_app(log_level="WARNING")
    app.test_client().get("/api/v1/health")
    assert logs(log_dir / "combined.log") == []


def test_file_modes_are_group_readable(app: Flask, log_dir: Path) -> None:
    app.test_client().get("/api/v1/health")
    logging.getLogger("clientforge_backend").error("x")
    for name in ("combined.log", "error.log"):
        mode = stat.S_IMODE((log_dir / name).stat().st_mode)
        assert mode == 0o640, (name, oct(mode))


def test_rotation_renames_and_keeps_backup_count(tmp_path: Path, logs: Lines) -> None:
    settings = Settings(log_dir=tmp_path, log_max_bytes=2048, log_backup_count=3)
    logger = configure_logging(settings)
    try:
        for index in range(200):
            logger.info("line %d", index, extra={"seq": index})
    finally:
        shutdown_logging()
    names = sorted(p.name for p in tmp_path.glob("combined.log*"))
    assert names == ["combined.log", "combined.log.1", "combined.log.2", "combined.log.3"]
    for name in names:
        size = (tmp_path / name).stat().st_size
        assert size < 2048 + 1024
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
    newest = logs(tmp_path / "combined.log")
    assert newest[-1]["seq"] == 199


def test_reconfigure_replaces_handlers(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    make_app(log_dir=str(tmp_path / "one"))
    make_app(log_dir=str(tmp_path / "two"))
    handlers = [
        h for h in logging.getLogger("clientforge_backend").handlers if hasattr(h, "baseFilename")
    ]
    assert len(handlers) == 2
    assert all("two" in getattr(h, "baseFilename", "") for h in handlers)
