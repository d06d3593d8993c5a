"""Metrics in single-process mode: names, labels, route templating, exclusions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(app: Flask, metrics_of: Callable[[str], Samples]) -> tuple[str, Samples]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    return text, metrics_of(text)


def test_metric_names_types_and_labels(app: Flask, metrics_of: Callable[[str], Samples]) -> None:
    app.test_client().get("/api/v1/health")
    text, samples = _scrape(app, metrics_of)
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "# TYPE active_connections gauge" in text
    for name in ("http_requests_total", "http_request_duration_seconds_count"):
        (labels, value), *_ = samples[name]
        assert set(labels) == {"method", "route", "status"}
        assert labels == {"method": "GET", "route": "/api/v1/health", "status": "200"}
        assert value == 1
    buckets = [labels["le"] for labels, _ in samples["http_request_duration_seconds_bucket"]]
    assert buckets[0] == "0.001" and buckets[-1] == "+Inf"
    assert samples["active_connections"] == [({}, 0.0)]
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
    ):
        assert name in samples, name
    (build_labels, build_value), *_ = samples["clientforge_backend_build_info"]
    assert build_labels == {"version": "1.0.0", "environment": "development"}
    assert build_value == 1
    assert "http_request_duration_ms" not in text


def test_route_label_is_the_url_rule_never_the_raw_path(
    app: Flask, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    client = app.test_client()
    for contact_id in (1, 2, 424242):
        client.get(f"/api/v1/contacts/{contact_id}")
    client.get("/api/v1/deals/77777")
    text, samples = _scrape(app, metrics_of)
    rule = "/api/v1/contacts/<int:contact_id>"
    assert msum(samples, "http_requests_total", route=rule, status="200") == 2
    assert msum(samples, "http_requests_total", route=rule, status="404") == 1
    assert msum(samples, "http_requests_total", route="/api/v1/deals/<int:deal_id>") == 1
    assert "424242" not in text and "77777" not in text
    assert "/api/v1/contacts/1" not in text


def test_unmatched_urls_share_one_route_value(
    app: Flask, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    client = app.test_client()
    raw_paths = ["/wp-admin/x.php", "/api/v1/contacts/not-a-number", "/api/v1/zzz", "/a/b/c/d"]
    for path in raw_paths:
        assert client.get(path).status_code == 404
    assert client.delete("/api/v1/health").status_code == 405
    text, samples = _scrape(app, metrics_of)
    assert msum(samples, "http_requests_total", route="<unmatched>", status="404") == 4
    assert msum(samples, "http_requests_total", route="<unmatched>", status="405") == 1
    for path in raw_paths:
        assert path not in text
    routes = {labels["route"] for labels, _ in samples["http_requests_total"]}
    assert routes == {"<unmatched>"}


def test_unknown_methods_are_bucketed(
    app: Flask, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    app.test_client().open("/api/v1/health", method="BREW")
    _, samples = _scrape(app, metrics_of)
    assert msum(samples, "http_requests_total", method="OTHER") == 1
    assert "BREW" not in str(samples)


def test_metrics_endpoint_is_not_counted(
    app: Flask, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    for _ in range(3):
        _scrape(app, metrics_of)
    app.test_client().get("/api/v1/health")
    text, samples = _scrape(app, metrics_of)
    assert msum(samples, "http_requests_total") == 1
    assert 'route="/metrics"' not in text


def test_counter_and_histogram_count_agree(
    app: Flask, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    client = app.test_client()
    for _ in range(25):
        client.get("/api/v1/health", headers={"x-tenant-id": "smoketest"})
    _, samples = _scrape(app, metrics_of)
    health = {"route": "/api/v1/health"}
    assert msum(samples, "http_requests_total", **health) == 25
    assert msum(samples, "http_request_duration_seconds_count", **health) == 25
    assert msum(samples, "http_request_duration_seconds_bucket", le="+Inf", **health) == 25
    assert msum(samples, "http_request_duration_seconds_sum", **health) > 0


def test_active_connections_counts_in_flight_requests(
    app: Flask, metrics_of: Callable[[str], Samples]
) -> None:
    seen: dict[str, Any] = {}

    @app.get("/probe")
    def probe() -> Any:
        seen["text"] = app.test_client().get("/metrics").get_data(as_text=True)
        return jsonify(ok=True)

    assert app.test_client().get("/probe").status_code == 200
    assert metrics_of(seen["text"])["active_connections"] == [({}, 1.0)]
    _, samples = _scrape(app, metrics_of)
    assert samples["active_connections"] == [({}, 0.0)]


def test_two_apps_do_not_share_metrics(
    make_app: Callable[..., Flask], metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    first = make_app()
    first.test_client().get("/api/v1/health")
    second = make_app()
    _, samples = _scrape(second, metrics_of)
    assert msum(samples, "http_requests_total") == 0


def test_metrics_disabled(make_app: Callable[..., Flask]) -> None:
    app = make_app(metrics_enabled=False)
    client = app.test_client()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/metrics").status_code == 404
    assert "prometheus_metrics" not in app.view_functions
