"""Prometheus metrics: request counter/histogram, in-flight gauge, process and runtime metrics.

Two modes, chosen by prometheus_client itself when it is first imported:

* single process (tests, ``flask run``): every metric lives in a registry owned by the app, so
  several apps in one interpreter never share or clash.
* multiprocess (gunicorn): ``PROMETHEUS_MULTIPROC_DIR`` was set by
  :mod:`clientforge_backend.gunicorn_conf` before the import. prometheus_client then keeps
  each value in a per-process mmap file in that directory; this is process-global by design of
  prometheus_client (its value class is a module-level choice), which is the one piece of global
  metrics state here. A scrape, served by any worker, merges the files of all workers
  (``MultiProcessCollector``), so counts are exact whichever worker answers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from flask import Flask
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, RestrictedRegistry
from prometheus_flask_exporter import PrometheusMetrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

METRICS_PATH: Final = "/metrics"
METRICS_ENDPOINT: Final = "prometheus_metrics"  # endpoint name prometheus-flask-exporter uses
KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD: Final = "OTHER"
# Latency buckets in seconds, finer at the low end where this API lives.
DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_LIVE_GAUGE_FILE: Final = re.compile(r"^gauge_live(?:sum|all|max|min|mostrecent)_(\d+)\.db$")


def multiprocess_active() -> bool:
    """True when prometheus_client runs in multiprocess mode (decided at its import)."""
    return values.ValueClass is not values.MutexValue


def normalise_method(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


class WorkerProcessCollector(Collector):
    """``process_*`` metrics of every live gunicorn worker, labelled ``pid``.

    In multiprocess mode prometheus_client exports no process metrics (a scrape is answered by
    one arbitrary worker). Live workers are the pids owning a ``gauge_live*_<pid>.db`` file in
    the multiprocess directory: each worker creates one for ``active_connections`` at start-up
    and gunicorn's ``child_exit`` hook deletes it (``mark_process_dead``) when the worker exits.
    Their figures are read from ``/proc/<pid>``, exactly as prometheus_client's own
    ``ProcessCollector`` does for a single process.
    """

    def __init__(self, multiproc_dir: Path, proc: str = "/proc") -> None:
        self._dir = multiproc_dir
        self._proc = proc

    def live_pids(self) -> list[int]:
        pids = {os.getpid()}
        try:
            names = os.listdir(self._dir)
        except OSError:
            names = []
        for name in names:
            match = _LIVE_GAUGE_FILE.match(name)
            if match:
                pids.add(int(match.group(1)))
        return sorted(pid for pid in pids if os.path.exists(os.path.join(self._proc, str(pid))))

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self.live_pids():
            collector = ProcessCollector(pid=_constant(pid), proc=self._proc, registry=None)
            for family in collector.collect():
                target = merged.get(family.name)
                if target is None:
                    target = Metric(family.name, family.documentation, family.type)
                    merged[family.name] = target
                for sample in family.samples:
                    labels = {**sample.labels, "pid": str(pid)}
                    target.add_sample(sample.name, labels, sample.value, sample.timestamp)
        return list(merged.values())


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


class RequestMetrics:
    """The per-request metrics, recorded from request hooks (not per-view decorators)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "http_requests",
            "Total HTTP requests by method, Flask route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration in seconds by method, Flask route template and status code.",
            ("method", "route", "status"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "active_connections",
            "HTTP requests currently being handled (summed over live workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Label lookups cost a lock and some validation; cache the children per label tuple.
        # Bounded: methods are normalised, routes are URL rules, statuses are HTTP codes.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (normalise_method(method), route, str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class InFlightMiddleware:
    """WSGI wrapper that keeps ``active_connections`` exact (``/metrics`` itself excluded)."""

    def __init__(self, wsgi_app: WSGIApplication, gauge: Gauge, excluded_path: str) -> None:
        self._app = wsgi_app
        self._gauge = gauge
        self._excluded = excluded_path

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self._excluded:
            return self._app(environ, start_response)
        self._gauge.inc()
        try:
            return self._app(environ, start_response)
        finally:
            self._gauge.dec()


class _Exporter(PrometheusMetrics):  # type: ignore[misc]
    """prometheus-flask-exporter, used for the ``/metrics`` endpoint only.

    Its default per-request metrics are switched off (``export_defaults=False``): ours are
    recorded by cheaper hooks with the label set the dashboards expect. ``generate_metrics`` is
    overridden so that a scrape uses the collectors chosen in :func:`init_metrics` (the
    exporter's multiprocess path would drop our per-worker process collector).
    """

    def __init__(self, app: Flask, scrape_registry: CollectorRegistry) -> None:
        self._scrape_registry = scrape_registry
        super().__init__(
            app,
            path=METRICS_PATH,
            export_defaults=False,
            group_by="url_rule",
            registry=scrape_registry,
        )

    def generate_metrics(
        self, accept_header: str | None = None, names: list[str] | None = None
    ) -> tuple[str, str]:
        registry: CollectorRegistry | RestrictedRegistry = self._scrape_registry
        if names:
            registry = self._scrape_registry.restricted_registry(names)
        generate_latest, content_type = choose_encoder(accept_header or "")
        return generate_latest(registry).decode("utf-8"), content_type


def init_metrics(app: Flask, version: str, environment: str) -> RequestMetrics:
    """Create the metrics and the ``/metrics`` endpoint for ``app``."""
    if multiprocess_active():
        multiproc_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        scrape_registry = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(scrape_registry, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
        scrape_registry.register(WorkerProcessCollector(multiproc_dir))
        PlatformCollector(registry=scrape_registry)
        metric_registry: CollectorRegistry | None = None  # values go to the mmap files
    else:
        scrape_registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=scrape_registry)
        PlatformCollector(registry=scrape_registry)
        metric_registry = scrape_registry

    build_info = Gauge(
        "clientforge_backend_build_info",
        "Build information of the ClientForge backend; the value is always 1.",
        ("version", "environment"),
        registry=metric_registry,
        multiprocess_mode="max",
    )
    build_info.labels(version, environment).set(1)
    request_metrics = RequestMetrics(metric_registry)
    _Exporter(app, scrape_registry)
    return request_metrics
