"""Rendering tests of the prometheus role: scrape jobs from the inventory, flags, web config, preflight."""

from __future__ import annotations

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
