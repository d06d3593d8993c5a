"""One way to find an endpoint: every consumer reaches a producer at the scheme, address and
port that the serving host's own variables give (roles/monitoring/lookup_plugins).

The reproduction from the review: with ``loki_http_listen_port: 3200`` on the Loki host,
Prometheus scraped mon1:3200 while Promtail pushed to mon1:3100 and Grafana's Loki datasource
pointed at mon1:3100. Now all three follow the Loki host."""

from __future__ import annotations

import yaml
from conftest import Renderer

INVENTORY = {
    "all": {
        "children": {
            "monitoring": {
                "hosts": {
                    "mon1": {
                        "monitoring_address": "mon1.internal",
                        "loki_http_listen_port": 3200,
                        "prometheus_port": 9190,
                    }
                }
            },
            "prometheus": {"children": {"monitoring": {}}},
            "loki": {"children": {"monitoring": {}}},
            "grafana": {"children": {"monitoring": {}}},
            "backend": {"hosts": {"app1": {"backend_port": 3300}, "app2": {}}},
            "promtail": {"children": {"backend": {}}},
        }
    }
}


def test_every_consumer_follows_the_port_of_the_serving_host(render: Renderer) -> None:
    prometheus = yaml.safe_load(
        render("prometheus", ["prometheus.yml.j2"], INVENTORY, {"render_hosts": "prometheus"})["mon1"]["prometheus.yml"]
    )
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in prometheus["scrape_configs"]
    }
    assert targets["loki"] == ["mon1.internal:3200"]
    assert targets["prometheus"] == ["mon1.internal:9190"]
    assert targets["backend"] == ["app1:3300", "app2:3000"]

    promtail = yaml.safe_load(
        render("promtail", ["promtail.yml.j2"], INVENTORY, {"render_hosts": "app1"})["app1"]["promtail.yml"]
    )
    assert [c["url"] for c in promtail["clients"]] == ["http://mon1.internal:3200/loki/api/v1/push"]

    grafana = yaml.safe_load(
        render("grafana", ["datasources.yml.j2"], INVENTORY, {"render_hosts": "grafana"})["mon1"]["datasources.yml"]
    )
    urls = {d["uid"]: d["url"] for d in grafana["datasources"]}
    assert urls == {"prometheus": "http://mon1.internal:9190", "loki": "http://mon1.internal:3200"}


def test_the_scheme_is_the_one_the_serving_host_serves(render: Renderer) -> None:
    """TLS switched on for Loki's host only: its consumers use https, the others stay on http."""
    inventory = yaml.safe_load(yaml.safe_dump(INVENTORY))
    mon1 = inventory["all"]["children"]["monitoring"]["hosts"]["mon1"]
    mon1.update(
        {"loki_tls_enabled": True, "loki_tls_cert_file": "/etc/tls/h.crt", "loki_tls_key_file": "/etc/tls/h.key"}
    )
    promtail = yaml.safe_load(
        render("promtail", ["promtail.yml.j2"], inventory, {"render_hosts": "app1"})["app1"]["promtail.yml"]
    )
    assert [c["url"] for c in promtail["clients"]] == ["https://mon1.internal:3200/loki/api/v1/push"]
    prometheus = yaml.safe_load(
        render("prometheus", ["prometheus.yml.j2"], inventory, {"render_hosts": "prometheus"})["mon1"]["prometheus.yml"]
    )
    schemes = {job["job_name"]: job["scheme"] for job in prometheus["scrape_configs"]}
    assert schemes["loki"] == "https" and schemes["backend"] == "http"
