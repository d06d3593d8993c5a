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

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .api import SETTINGS_KEY, STARTED_KEY, VERSION_KEY, create_api_blueprint
from .config import Settings, load_settings
from .logging_setup import (
    FINISHED_ENV,
    REQUEST_ID_ENV,
    REQUEST_LOGGER_NAME,
    START_ENV,
    TENANT_ENV,
    UNMATCHED_ROUTE,
    configure_logging,
)

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
        from .metrics import METRICS_ENDPOINT, METRICS_PATH, InFlightMiddleware, init_metrics

        request_metrics = init_metrics(app, version, settings.environment)
        metrics_endpoint = METRICS_ENDPOINT
        # In-flight gauge as a WSGI wrapper: try/finally is exact and cheaper than two hooks.
        app.wsgi_app = InFlightMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, request_metrics.in_flight, METRICS_PATH
        )

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
    (The in-flight gauge is a thin WSGI wrapper, see :class:`~.metrics.InFlightMiddleware`.)
    """
    request_log = logging.getLogger(REQUEST_LOGGER_NAME)
    perf_counter = time.perf_counter
    # Per-request state lives in the WSGI environ (plain dict): fewer context-local lookups.

    @app.before_request
    def start_request() -> None:
        environ = request.environ
        environ[START_ENV] = perf_counter()
        headers = request.headers
        request_id = headers.get(REQUEST_ID_HEADER)
        if not request_id or not _REQUEST_ID_RE.match(request_id):
            request_id = uuid.uuid4().hex
        environ[REQUEST_ID_ENV] = request_id
        tenant = headers.get(TENANT_HEADER)
        environ[TENANT_ENV] = tenant[:MAX_HEADER_VALUE] if tenant else None

    @app.after_request
    def finish_request(response: Response) -> Response:
        environ = request.environ
        if environ.get(FINISHED_ENV):  # after_request runs again if a later hook raised
            return response
        environ[FINISHED_ENV] = True
        now = perf_counter()
        duration = now - environ.get(START_ENV, now)
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        status = response.status_code
        method = environ["REQUEST_METHOD"]
        if metrics is not None and (rule is None or rule.endpoint != metrics_endpoint):
            metrics.observe(method, route, status, duration)
        request_id = environ.get(REQUEST_ID_ENV)
        path = request.path
        request_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": request_id,
                "tenant": environ.get(TENANT_ENV),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000.0, 3),
                "path": path,
            },
        )
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        return jsonify(error=exc.name, message=exc.description, status=code), code


def settings_of(app: Flask) -> Settings:
    settings: Settings = app.config[SETTINGS_KEY]
    return settings
