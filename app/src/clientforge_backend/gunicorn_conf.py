"""gunicorn configuration, read from ``BACKEND_*`` environment variables.

Usage::

    gunicorn -c python:clientforge_backend.gunicorn_conf "clientforge_backend:create_app()"

gunicorn reads the module-level names below as its settings. Importing this module also
validates the application settings, so a bad ``BACKEND_*`` value stops the master with a
message naming the variable instead of every worker failing to boot.

Multiprocess metrics: ``PROMETHEUS_MULTIPROC_DIR`` is set here, in the master, before any
worker imports prometheus_client (the app is not preloaded), the directory is emptied when the
master starts (``on_starting``) and a dead worker's live gauges are dropped (``child_exit``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from clientforge_backend.config import load_server_settings, load_settings

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

LOG_UMASK = 0o027  # files gunicorn or the app create: owner rw, group r, others nothing

_app_settings = load_settings(os.environ)
_server = load_server_settings(os.environ)

bind = [_server.bind]
workers = _server.workers
threads = _server.threads
worker_class = "gthread" if _server.threads > 1 else "sync"
timeout = _server.timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
preload_app = False  # each worker builds its app after fork (and after the env var below)
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
loglevel = "warning" if _app_settings.log_level in ("ERROR", "CRITICAL") else "info"
proc_name = "clientforge-backend"
umask = LOG_UMASK
# gunicorn >= 25.1 opens a control socket under $XDG_RUNTIME_DIR or $HOME by default; a
# service user has neither writable (ProtectSystem=strict) and test instances would collide.
control_socket_disable = True
# HTTPS for the API and /metrics (the production profile); both or neither.
certfile = str(_server.tls_cert_file) if _server.tls_cert_file else None
keyfile = str(_server.tls_key_file) if _server.tls_key_file else None

if _app_settings.metrics_enabled:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_server.metrics_dir)
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ.pop("prometheus_multiproc_dir", None)


def _wipe_metrics_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    for entry in directory.iterdir():
        if entry.is_file() and entry.suffix == ".db":
            entry.unlink()


def on_starting(server: Arbiter) -> None:
    os.umask(LOG_UMASK)
    if _app_settings.metrics_enabled:
        _wipe_metrics_dir(_server.metrics_dir)


def child_exit(server: Arbiter, worker: Worker) -> None:
    if _app_settings.metrics_enabled:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(_server.metrics_dir))  # type: ignore[no-untyped-call]
