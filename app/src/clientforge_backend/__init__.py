"""ClientForge CRM backend: Flask app, Prometheus metrics, JSON-lines logs.

Run under gunicorn::

    gunicorn -c python:clientforge_backend.gunicorn_conf "clientforge_backend:create_app()"

This module stays import-light on purpose: gunicorn imports the package to load
``clientforge_backend.gunicorn_conf``, which must set ``PROMETHEUS_MULTIPROC_DIR`` before
prometheus_client is imported anywhere. So ``create_app`` imports the application lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["__version__", "create_app"]
__version__ = "1.0.0"


def create_app(config: Mapping[str, object] | None = None) -> Flask:
    """Build the Flask application (see :func:`clientforge_backend.app.create_app`)."""
    from .app import create_app as _create_app

    return _create_app(config)
