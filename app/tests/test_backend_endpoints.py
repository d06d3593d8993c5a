"""HTTP endpoints, including the production gate of the test-error endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask


def test_health(app: Flask) -> None:
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["status", "version", "uptime_seconds", "tenant"]
    assert body["status"] == "ok"
    assert body["version"] == "1.0.0"
    assert isinstance(body["uptime_seconds"], float)
    assert body["uptime_seconds"] >= 0
    assert body["tenant"] is None


def test_health_tenant_and_version_override(make_app: Callable[..., Flask]) -> None:
    app = make_app(version="2.3.4-rc1")
    body = app.test_client().get("/api/v1/health", headers={"x-tenant-id": "acme"}).get_json()
    assert body["tenant"] == "acme"
    assert body["version"] == "2.3.4-rc1"


def test_version_from_env(make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_VERSION", "7.0.0")
    assert make_app().test_client().get("/api/v1/health").get_json()["version"] == "7.0.0"


def test_request_id_header(app: Flask) -> None:
    client = app.test_client()
    echoed = client.get("/api/v1/health", headers={"x-request-id": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/api/v1/health", headers={"x-request-id": "bad id\twith spaces"})
    assert len(generated.headers["X-Request-ID"]) == 32
    assert generated.headers["X-Request-ID"] != "bad id\twith spaces"


def test_contacts(app: Flask) -> None:
    client = app.test_client()
    listing = client.get("/api/v1/contacts").get_json()
    assert listing["count"] == len(listing["items"]) == 3
    assert client.get("/api/v1/contacts/1").get_json()["name"] == "Ada Lovelace"
    missing = client.get("/api/v1/contacts/999")
    assert missing.status_code == 404
    assert missing.get_json() == {
        "error": "Not Found",
        "message": "contact 999 not found",
        "status": 404,
    }


def test_deals(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/v1/deals").get_json()["count"] == 2
    assert client.get("/api/v1/deals?stage=won").get_json()["count"] == 1
    assert client.get("/api/v1/deals/2").get_json()["stage"] == "open"
    assert client.get("/api/v1/deals/3").status_code == 404


def test_unknown_route_and_method(app: Flask) -> None:
    client = app.test_client()
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "Not Found"
    wrong_method = client.delete("/api/v1/contacts")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["status"] == 405


def _error_lines(log_dir: Path, logs: Callable[[Path], list[dict[str, Any]]]) -> list[Any]:
    return logs(log_dir / "error.log")


def test_test_error_enabled_in_development(
    make_app: Callable[..., Flask], log_dir: Path, logs: Callable[[Path], list[dict[str, Any]]]
) -> None:
    app = make_app(enable_test_error=True)
    response = app.test_client().post(
        "/api/v1/test/error", headers={"x-request-id": "err-1", "x-tenant-id": "t1"}
    )
    assert response.status_code == 500
    assert response.get_json()["error"] == "Intentional test error"
    errors = _error_lines(log_dir, logs)
    assert len(errors) == 1
    assert errors[0]["level"] == "ERROR"
    assert errors[0]["request_id"] == "err-1"
    assert errors[0]["tenant"] == "t1"
    assert errors[0]["route"] == "/api/v1/test/error"
    combined_errors = [line for line in logs(log_dir / "combined.log") if line["level"] == "ERROR"]
    assert combined_errors == errors


def test_test_error_disabled_by_default(
    app: Flask, log_dir: Path, logs: Callable[[Path], list[dict[str, Any]]]
) -> None:
    assert app.test_client().post("/api/v1/test/error").status_code == 404
    assert _error_lines(log_dir, logs) == []


@pytest.mark.parametrize("flag", [True, "true", "1"])
def test_test_error_never_in_production(
    make_app: Callable[..., Flask],
    flag: object,
    log_dir: Path,
    logs: Callable[[Path], list[dict[str, Any]]],
) -> None:
    app = make_app(environment="production", enable_test_error=flag)
    assert app.test_client().post("/api/v1/test/error").status_code == 404
    assert app.test_client().get("/api/v1/test/error").status_code == 404
    assert all("test" not in rule.rule for rule in app.url_map.iter_rules())
    assert _error_lines(log_dir, logs) == []


def test_production_gate_from_env(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_ENVIRONMENT", "production")
    monkeypatch.setenv("BACKEND_ENABLE_TEST_ERROR", "true")
    app = make_app()
    assert app.test_client().post("/api/v1/test/error").status_code == 404


def test_unhandled_exception_is_json_500_and_one_error_line(
    make_app: Callable[..., Flask], log_dir: Path, logs: Callable[[Path], list[dict[str, Any]]]
) -> None:
    app = make_app(TESTING=False)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json()["error"] == "Internal Server Error"
    errors = _error_lines(log_dir, logs)
    assert len(errors) == 1
    assert "kaboom" in errors[0]["exc_info"]
    assert errors[0]["route"] == "/boom"
