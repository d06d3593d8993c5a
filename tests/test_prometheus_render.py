"""Rendering tests of the prometheus role: scrape jobs from the inventory, flags, web config, preflight."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import bcrypt
import pytest
import yaml
from conftest import REPO, run_preflight

PROMTOOL = Path("/usr/bin/promtool")
TEMPLATES = ["prometheus.yml.j2", "web-config.yml.j2", "prometheus.service.j2"]

INVENTORY = {
    "all": {
        "hosts": {
            "mon1": {},
            "app1": {"monitoring_address": "10.1.0.11"},
            "app2": {"backend_port": 3001, "node_exporter_enabled": True},
            "logs1": {"monitoring_address": "logs1.example.internal"},
            "db1": {},
        },
        "children": {
            "prometheus": {"hosts": {"mon1": {}}},
            "grafana": {"hosts": {"mon1": {}}},
            "loki": {"hosts": {"logs1": {}}},
            "backend": {"hosts": {"app1": {}, "app2": {}}},
            "promtail": {"children": {"backend": {}}},
            "node_exporter": {"hosts": {"mon1": {}, "db1": {"node_exporter_enabled": False}}},
        },
    }
}


def jobs_of(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def targets_of(job: dict) -> dict[str, str]:
    """{instance label: target address} of a static-config job."""
    out = {}
    for static in job["static_configs"]:
        assert len(static["targets"]) == 1
        out[static["labels"]["instance"]] = static["targets"][0]
    return out


@pytest.fixture
def rendered(render) -> dict[str, str]:
    return render("prometheus", TEMPLATES, INVENTORY, {"render_hosts": "mon1"})["mon1"]


def test_scrape_jobs_follow_the_inventory(rendered: dict[str, str]) -> None:
    config = yaml.safe_load(rendered["prometheus.yml"])
    jobs = jobs_of(config)
    assert list(jobs) == ["backend", "prometheus", "loki", "promtail", "grafana", "node_exporter"]
    assert targets_of(jobs["backend"]) == {"app1": "10.1.0.11:3000", "app2": "app2:3001"}
    assert targets_of(jobs["prometheus"]) == {"mon1": "mon1:9090"}
    assert targets_of(jobs["loki"]) == {"logs1": "logs1.example.internal:3100"}
    assert targets_of(jobs["promtail"]) == {"app1": "10.1.0.11:9080", "app2": "app2:9080"}
    assert targets_of(jobs["grafana"]) == {"mon1": "mon1:3005"}
    # mon1 from the group, app2 by its host variable, db1 opted out.
    assert targets_of(jobs["node_exporter"]) == {"mon1": "mon1:9100", "app2": "app2:9100"}
    for job in jobs.values():
        assert job["scheme"] == "http"
        assert "basic_auth" not in job
    assert config["global"]["scrape_interval"] == "10s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_missing_groups_give_no_job(render) -> None:
    inventory = {"all": {"children": {"prometheus": {"hosts": {"mon1": {}}}, "backend": {"hosts": {"app1": {}}}}}}
    config = yaml.safe_load(render("prometheus", ["prometheus.yml.j2"], inventory)["mon1"]["prometheus.yml"])
    assert list(jobs_of(config)) == ["backend", "prometheus"]


def test_extra_scrape_configs_labels_and_remote_write(render) -> None:
    extra = [{"job_name": "blackbox", "static_configs": [{"targets": ["probe:9115"]}]}]
    remote = [{"url": "https://metrics.example.com/api/v1/write"}]
    out = render(
        "prometheus",
        ["prometheus.yml.j2", "prometheus.service.j2"],
        INVENTORY,
        {
            "render_hosts": "mon1",
            "prometheus_extra_scrape_configs": extra,
            "prometheus_external_labels": {"site": "lab"},
            "prometheus_remote_write": remote,
            "prometheus_retention_size": "512MB",
            "prometheus_retention_time": "30d",
        },
    )["mon1"]
    config = yaml.safe_load(out["prometheus.yml"])
    assert config["scrape_configs"][-1] == extra[0]
    # The replica label (prometheus_replica_label) names this Prometheus next to the operator's labels.
    assert config["global"]["external_labels"] == {"replica": "mon1", "site": "lab"}
    assert config["remote_write"] == remote
    assert "--storage.tsdb.retention.time=30d" in out["prometheus.service"]
    assert "--storage.tsdb.retention.size=512MB" in out["prometheus.service"]


@pytest.mark.skipif(not PROMTOOL.is_file(), reason="/usr/bin/promtool is absent")
def test_rendered_config_passes_promtool(rendered: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(rendered["prometheus.yml"])
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", "--syntax-only", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    web = tmp_path / "web-config.yml"
    web.write_text(rendered["web-config.yml"])
    result = subprocess.run(
        [str(PROMTOOL), "check", "web-config", str(web)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_flags_follow_the_major_version(render) -> None:
    def unit(version: str, method: str = "archive") -> str:
        extra = {
            "render_hosts": "mon1",
            "prometheus_version": version,
            "prometheus_install_method": method,
            "prometheus_feature_flags": ["exemplar-storage", "promql-at-modifier"],
        }
        return render("prometheus", ["prometheus.service.j2"], INVENTORY, extra)["mon1"]["prometheus.service"]

    v3 = unit("3.5.0")
    assert "ExecStart=/usr/local/bin/prometheus" in v3
    assert "--web.console" not in v3
    assert "--enable-feature=exemplar-storage \\" in v3 or v3.rstrip().count("--enable-feature=exemplar-storage\n")
    assert "promql-at-modifier" not in v3
    assert "--storage.tsdb.path=/var/lib/prometheus " in v3.replace("\\\n", " ")
    v2 = unit("2.42.0")
    assert "--web.console.templates=/opt/prometheus/2.42.0/consoles" in v2
    assert "--enable-feature=exemplar-storage,promql-at-modifier" in v2
    package = unit("3.5.0", "package")
    assert "ExecStart=/usr/bin/prometheus" in package
    assert "--storage.tsdb.path=/var/lib/prometheus/metrics2" in package
    # Without a detected binary, the package method assumes Debian's 2.x and keeps the console flags.
    assert "--web.console.templates=/etc/prometheus/consoles" in package
    for text in (v3, v2, package):
        assert "--storage.tsdb.retention=" not in text
        assert "ProtectSystem=strict" in text and "CapabilityBoundingSet=\n" in text


def test_hardening_scrapes_over_https_with_auth(render) -> None:
    extra = {
        "render_hosts": "mon1",
        "monitoring_hardening": True,
        "monitoring_tls_ca_file": "/etc/ssl/monitoring/ca.crt",
        "monitoring_tls_cert_file": "/etc/ssl/monitoring/mon1.crt",
        "monitoring_tls_key_file": "/etc/ssl/monitoring/mon1.key",
        "prometheus_scrape_basic_auth_username": "scraper",
        "prometheus_scrape_basic_auth_password": "scrape-secret",
        "prometheus_web_basic_auth_users": {"admin": "web-secret", "grafana": "other-secret"},
        "prometheus_node_exporter_scheme": "http",
    }
    first = render("prometheus", TEMPLATES, INVENTORY, extra)["mon1"]
    jobs = jobs_of(yaml.safe_load(first["prometheus.yml"]))
    backend = jobs["backend"]
    assert backend["scheme"] == "https"
    assert backend["tls_config"] == {"ca_file": "/etc/ssl/monitoring/ca.crt"}
    assert backend["basic_auth"] == {"username": "scraper", "password_file": "/etc/prometheus/scrape-password"}
    assert "scrape-secret" not in first["prometheus.yml"]
    # Credentials never go over plain http.
    assert jobs["node_exporter"]["scheme"] == "http" and "basic_auth" not in jobs["node_exporter"]

    web = yaml.safe_load(first["web-config.yml"])
    assert web["tls_server_config"] == {
        "cert_file": "/etc/ssl/monitoring/mon1.crt",
        "key_file": "/etc/ssl/monitoring/mon1.key",
    }
    users = web["basic_auth_users"]
    assert set(users) == {"admin", "grafana"}
    assert bcrypt.checkpw(b"web-secret", users["admin"].encode())
    assert not bcrypt.checkpw(b"wrong", users["admin"].encode())
    assert "web-secret" not in first["web-config.yml"]
    # Stable hashes: a second run writes the same file (idempotence), salts differ per user.
    second = render("prometheus", ["web-config.yml.j2"], INVENTORY, extra)["mon1"]
    assert second["web-config.yml"] == first["web-config.yml"]
    assert users["admin"][7:29] != users["grafana"][7:29]


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ("prometheus_retention_time=banana", "prometheus_retention_time"),
        ("prometheus_retention_size=lots", "prometheus_retention_size"),
        ("prometheus_version=latest", "prometheus_version"),
        ("prometheus_version=2.41.0", "prometheus_version"),
        ("prometheus_web_tls_cert_file=/etc/ssl/x.crt", "prometheus_web_tls_key_file"),
        ("prometheus_web_listen_address=9090", "prometheus_web_listen_address"),
        ("prometheus_scrape_interval=often", "prometheus_scrape_interval"),
    ],
)
def test_bad_input_fails_naming_the_variable(tmp_path: Path, extra: str, variable: str) -> None:
    result = run_preflight(tmp_path, "prometheus", "-e", extra)
    assert result.returncode != 0
    assert variable in result.stdout, result.stdout[-3000:]


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    result = run_preflight(tmp_path, "prometheus", "-e", "prometheus_retention_size=10GB")
    assert result.returncode == 0, result.stdout[-3000:]


def test_role_files_exist() -> None:
    role = REPO / "roles" / "prometheus"
    for name in ("defaults/main.yml", "meta/argument_specs.yml", "README.md", "tasks/render_vars.yml"):
        assert (role / name).is_file(), name


def test_a_promtool_refusal_is_traced_to_the_variable_behind_it() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "prometheus_filters", REPO / "roles/prometheus/filter_plugins/prometheus.py"
    )
    assert spec and spec.loader
    filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters)
    rendered = (
        "global:\n  scrape_interval: 10s\nscrape_configs:\n- job_name: backend\n  scheme: http\n"
        "- job_name: broken\n  x: 1\n"
    )
    unknown_field = "FAILED: parsing YAML file /tmp/.source.yml: yaml: unmarshal errors:\n  line 7: field x not found"
    assert (
        filters.prometheus_config_blame(unknown_field, rendered, ["broken"])
        == "prometheus_extra_scrape_configs (job broken)"
    )
    too_long = 'FAILED: scrape timeout greater than scrape interval for scrape config with job name "backend"'
    assert (
        filters.prometheus_config_blame(too_long, rendered, ["broken"]) == "prometheus_scrape_components (job backend)"
    )
    assert filters.prometheus_config_blame("line 2: bad", rendered, []).startswith("prometheus_scrape_interval")


# Two replicas, the central store they write to, one backend (issue: beyond one monitoring host).
HA_INVENTORY = {
    "all": {
        "hosts": {"prom1": {}, "prom2": {}, "store1": {}, "app1": {}},
        "children": {
            "prometheus": {"hosts": {"prom1": {}, "prom2": {}}},
            "metrics_store": {"hosts": {"store1": {}}},
            "backend": {"hosts": {"app1": {}}},
        },
    }
}


def test_replicas_write_to_the_central_store(render, tmp_path: Path) -> None:
    out = render(
        "prometheus",
        ["prometheus.yml.j2", "prometheus.service.j2", "remote-write.rules.yml.j2"],
        HA_INVENTORY,
        {"render_hosts": "prom1:prom2:store1", "render_facts": ["__prometheus_role_rule_files"]},
    )
    prom1, prom2 = (yaml.safe_load(out[host]["prometheus.yml"]) for host in ("prom1", "prom2"))
    # Identical scrape jobs, told apart by the replica label, which alerts drop (Alertmanager dedups).
    assert prom1["scrape_configs"] == prom2["scrape_configs"]
    assert prom1["global"]["external_labels"] == {"replica": "prom1"}
    assert prom2["global"]["external_labels"] == {"replica": "prom2"}
    assert prom1["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    assert [w["url"] for w in prom1["remote_write"]] == ["http://store1:9090/api/v1/write"]
    write = prom1["remote_write"][0]
    assert write["name"] == "store1"
    assert write["queue_config"]["batch_send_deadline"] == "5s"
    assert "basic_auth" not in write and "tls_config" not in write
    # The replicas watch the store (ScrapeTargetDown) and their own queues (PrometheusRemoteWriteBehind).
    assert targets_of(jobs_of(prom1)["metrics_store"]) == {"store1": "store1:9090"}
    assert "remote-write.rules.yml" in json.loads(out["prom1"]["facts.json"])["__prometheus_role_rule_files"]
    assert "--web.enable-remote-write-receiver" not in out["prom1"]["prometheus.service"]

    store = yaml.safe_load(out["store1"]["prometheus.yml"])
    # The store receives: it scrapes nothing, writes nowhere, evaluates no rule, alerts nobody.
    assert store["scrape_configs"] == []
    assert store["remote_write"] == []
    assert store["global"]["external_labels"] == {}
    assert store["alerting"] == {"alertmanagers": []}
    assert json.loads(out["store1"]["facts.json"])["__prometheus_role_rule_files"] == []
    assert "--web.enable-remote-write-receiver" in out["store1"]["prometheus.service"]
    if PROMTOOL.is_file():
        for host in ("prom1", "store1"):
            config = tmp_path / f"{host}.yml"
            config.write_text(out[host]["prometheus.yml"])
            result = subprocess.run(
                [str(PROMTOOL), "check", "config", "--syntax-only", str(config)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        rules = tmp_path / "remote-write.rules.yml"
        rules.write_text(out["prom1"]["remote-write.rules.yml"])
        result = subprocess.run(
            [str(PROMTOOL), "check", "rules", str(rules)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_hardened_remote_write_and_a_thanos_or_mimir_url(render) -> None:
    hardened = {
        "render_hosts": "prom1",
        "monitoring_hardening": True,
        "monitoring_tls_ca_file": "/etc/monitoring/tls/ca.crt",
        "monitoring_tls_cert_file": "/etc/monitoring/tls/host.crt",
        "monitoring_tls_key_file": "/etc/monitoring/tls/host.key",
        "prometheus_remote_write_basic_auth_username": "writer",
        "prometheus_remote_write_basic_auth_password": "write-secret",
    }
    text = render("prometheus", ["prometheus.yml.j2"], HA_INVENTORY, hardened)["prom1"]["prometheus.yml"]
    write = yaml.safe_load(text)["remote_write"][0]
    assert write["url"] == "https://store1:9090/api/v1/write"
    assert write["tls_config"] == {"ca_file": "/etc/monitoring/tls/ca.crt"}
    assert write["basic_auth"] == {"username": "writer", "password_file": "/etc/prometheus/remote-write-password"}
    assert "write-secret" not in text

    mimir = {
        "render_hosts": "prom1",
        "prometheus_remote_write_url": "https://mimir.example.com/api/v1/push",
        "prometheus_remote_write_headers": {"X-Scope-OrgID": "team-a"},
        "prometheus_remote_write": [{"url": "https://other.example.com/write"}],
    }
    config = yaml.safe_load(render("prometheus", ["prometheus.yml.j2"], HA_INVENTORY, mimir)["prom1"]["prometheus.yml"])
    assert [(w.get("name"), w["url"]) for w in config["remote_write"]] == [
        ("central", "https://mimir.example.com/api/v1/push"),
        (None, "https://other.example.com/write"),
    ]
    assert config["remote_write"][0]["headers"] == {"X-Scope-OrgID": "team-a"}


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ("prometheus_remote_write_url=store:9090/api/v1/write", "prometheus_remote_write_url"),
        ('{"prometheus_remote_write_queue_config": {"max_shard": 5}}', "prometheus_remote_write_queue_config"),
        ("prometheus_remote_write_basic_auth_username=writer", "prometheus_remote_write_basic_auth_password"),
        ("prometheus_alert_remote_write_behind_for=soon", "prometheus_alert_remote_write_behind_for"),
    ],
)
def test_bad_remote_write_input_fails_naming_the_variable(tmp_path: Path, extra: str, variable: str) -> None:
    result = run_preflight(tmp_path, "prometheus", "-e", extra)
    assert result.returncode != 0
    assert variable in result.stdout, result.stdout[-3000:]
