"""The Flask application factory and the per-request hooks (request id, timing, log, metrics)."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Final

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .api import SETTINGS_KEY, STARTED_KEY, VERSION_KEY, create_api_blueprint
from .config import Settings, load_settings
from .logging_setup import REQUEST_LOGGER_NAME, configure_logging, route_of_current_request

if TYPE_CHECKING:
    from .metrics import RequestMetrics

DIST_NAME: Final = "clientforge-backend"
FALLBACK_VERSION: Final = "1.0.0"
REQUEST_ID_HEADER: Final = "X-Request-ID"
TENANT_HEADER: Final = "X-Tenant-ID"
MAX_HEADER_VALUE: Final = 128
_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def package_version() -> str:
    try:
        return dist_version(DIST_NAME)
    except PackageNotFoundError:
        return FALLBACK_VERSION


def create_app(config: Mapping[str, object] | None = None) -> Flask:
    """Build the application.

    Settings come from ``BACKEND_*`` environment variables; ``config`` may override them with
    lower-case setting names (``{"environment": "production"}``). Upper-case keys go to
    ``app.config`` unchanged (``{"TESTING": True}``). Invalid values raise
    :class:`~clientforge_backend.config.ConfigError` naming the variable.
    """
    overrides = dict(config or {})
    flask_config = {key: value for key, value in overrides.items() if key.isupper()}
    setting_overrides = {key: value for key, value in overrides.items() if not key.isupper()}
    settings = load_settings(os.environ, setting_overrides)
    version = settings.version or package_version()

    log = configure_logging(settings)

    app = Flask("clientforge_backend")
    app.config.update(flask_config)
    app.config[SETTINGS_KEY] = settings
    app.config[VERSION_KEY] = version
    app.config[STARTED_KEY] = time.monotonic()
    app.json.sort_keys = False  # type: ignore[attr-defined]

    request_metrics: RequestMetrics | None = None
    metrics_endpoint: str | None = None
    if settings.metrics_enabled:
        # Imported here so that the package can be imported (gunicorn loads the config module
        # from it) before PROMETHEUS_MULTIPROC_DIR is set, and so that a disabled-metrics
        # process never loads prometheus_client at all.
        from .metrics import METRICS_ENDPOINT, init_metrics

        request_metrics = init_metrics(app, version, settings.environment)
        metrics_endpoint = METRICS_ENDPOINT

    _install_request_hooks(app, request_metrics, metrics_endpoint)
    _install_error_handlers(app)
    app.register_blueprint(create_api_blueprint(settings))

    log.info(
        "application created",
        extra={
            "version": version,
            "environment": settings.environment,
            "metrics_enabled": settings.metrics_enabled,
            "test_error_enabled": settings.test_error_enabled,
        },
    )
    return app


def _install_request_hooks(
    app: Flask, metrics: RequestMetrics | None, metrics_endpoint: str | None
) -> None:
    """One set of hooks does request id, timing, the request log line and the metrics.

    Hooks instead of per-view decorators: one cheap pass per request, and 404/405 (which have
    no view) are covered too. ``/metrics`` itself is logged but not counted in the metrics.
    """
    request_log = logging.getLogger(REQUEST_LOGGER_NAME)
    perf_counter = time.perf_counter

    @app.before_request
    def start_request() -> None:
        g.start = perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER)
        if not request_id or not _REQUEST_ID_RE.match(request_id):
            request_id = uuid.uuid4().hex
        g.request_id = request_id
        tenant = request.headers.get(TENANT_HEADER)
        g.tenant = tenant[:MAX_HEADER_VALUE] if tenant else None
        if metrics is not None and request.endpoint != metrics_endpoint:
            metrics.in_flight.inc()
            g.in_flight = True

    @app.after_request
    def finish_request(response: Response) -> Response:
        if g.get("finished"):  # after_request runs again if a later hook raised
            return response
        g.finished = True
        start = g.get("start")
        duration = perf_counter() - start if start is not None else 0.0
        route = route_of_current_request()
        status = response.status_code
        method = request.method
        if metrics is not None and request.endpoint != metrics_endpoint:
            metrics.observe(method, route, status, duration)
        request_log.info(
            "%s %s %s",
            method,
            request.path,
            status,
            extra={
                "request_id": g.get("request_id"),
                "tenant": g.get("tenant"),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000.0, 3),
                "path": request.path,
            },
        )
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        return response

    @app.teardown_request
    def end_request(_exc: BaseException | None) -> None:
        if metrics is not None and g.pop("in_flight", False):
            metrics.in_flight.dec()


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        return jsonify(error=exc.name, message=exc.description, status=code), code


def settings_of(app: Flask) -> Settings:
    settings: Settings = app.config[SETTINGS_KEY]
    return settings
