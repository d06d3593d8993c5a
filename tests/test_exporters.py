"""node_exporter and blackbox_exporter (one shared internal role, `exporter`) and the probe jobs
Prometheus derives from the inventory: rendered units, flags, web configs, blackbox.yml and the
scrape config, checked with the programs' own checkers where this machine has them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import bcrypt
import pytest
import yaml
from conftest import REPO, Renderer, offline_exposure, run_preflight

PROMTOOL = Path("/usr/bin/promtool")
# The binary of Debian's prometheus-blackbox-exporter (or an upstream one) when this machine has it.
BLACKBOX = (
    os.environ.get("BLACKBOX_EXPORTER_BIN")
    or shutil.which("prometheus-blackbox-exporter")
    or shutil.which("blackbox_exporter")
)

INVENTORY = {
    "all": {
        "hosts": {
            "mon1": {},
            "app1": {"monitoring_address": "10.1.0.11"},
            "app2": {"backend_port": 3001},
            "db1": {"node_exporter_enabled": False},
        },
        "children": {
            "prometheus": {"hosts": {"mon1": {}}},
            "grafana": {"hosts": {"mon1": {}}},
            "backend": {"hosts": {"app1": {}, "app2": {}}},
            "blackbox_exporter": {"hosts": {"mon1": {}}},
            "node_exporter": {"hosts": {"mon1": {}, "app1": {}, "app2": {}, "db1": {}}},
        },
    }
}
HARDENING = {
    "monitoring_hardening": True,
    "monitoring_tls_ca_file": "/etc/ssl/monitoring/ca.crt",
    "monitoring_tls_cert_file": "/etc/ssl/monitoring/host.crt",
    "monitoring_tls_key_file": "/etc/ssl/monitoring/host.key",
    "monitoring_tls_group": "monitoring-tls",
    "prometheus_scrape_basic_auth_username": "scraper",
    "prometheus_scrape_basic_auth_password": "scrape-secret",
    "prometheus_web_basic_auth_users": {"admin": "web-secret"},
}
UNIT = ["exporter.service.j2", "web-config.yml.j2"]


def render_exporter(render: Renderer, role: str, extra: dict | None = None, templates: list[str] | None = None) -> dict:
    variables = {"render_hosts": "mon1", "render_templates_role": "exporter", **(extra or {})}
    return render(role, templates or UNIT, INVENTORY, variables)["mon1"]


def exec_start(unit: str) -> list[str]:
    text = unit.split("ExecStart=", 1)[1].split("\n\n", 1)[0]
    return [part.strip() for part in text.replace("\\\n", " ").split()]


def jobs_of(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_node_exporter_unit_flags_and_sandbox(render: Renderer, tmp_path: Path) -> None:
    out = render_exporter(render, "node_exporter")
    unit = out["exporter.service"]
    flags = exec_start(unit)
    assert flags[0] == "/usr/bin/prometheus-node-exporter"  # Debian's package by default
    assert "--collector.systemd" in flags
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter" in flags
    assert "--web.config.file=/etc/prometheus/node_exporter/web-config.yml" in flags
    assert "--web.listen-address=0.0.0.0:9100" in flags
    assert "ExecReload" not in unit  # node_exporter has no reload: changes restart it
    assert "User=prometheus" in unit and "ProtectSystem=strict" in unit
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" in unit
    assert "CapabilityBoundingSet=\n" in unit and "AmbientCapabilities=\n" in unit
    assert yaml.safe_load(out["web-config.yml"]) == {}
    assert offline_exposure(unit, "prometheus-node-exporter.service", tmp_path) <= 2.0


def test_node_exporter_collectors_follow_the_variables(render: Renderer) -> None:
    extra = {
        "node_exporter_collectors_enabled": ["systemd", "processes"],
        "node_exporter_collectors_disabled": ["wifi"],
        "node_exporter_textfile_dir": "",
        "node_exporter_install_method": "archive",
        "node_exporter_port": 9200,
    }
    flags = exec_start(render_exporter(render, "node_exporter", extra)["exporter.service"])
    assert flags[0] == "/usr/local/bin/node_exporter"
    assert {"--collector.systemd", "--collector.processes", "--no-collector.wifi", "--no-collector.textfile"} <= set(
        flags
    )
    assert "--web.listen-address=0.0.0.0:9200" in flags
    assert not [f for f in flags if f.startswith("--collector.textfile.directory")]


def test_hardening_serves_tls_with_hashed_scrape_credentials(render: Renderer) -> None:
    for role in ("node_exporter", "blackbox_exporter"):
        out = render_exporter(render, role, HARDENING)
        web = yaml.safe_load(out["web-config.yml"])
        assert web["tls_server_config"] == {
            "cert_file": "/etc/ssl/monitoring/host.crt",
            "key_file": "/etc/ssl/monitoring/host.key",
        }
        # Prometheus' scrape user is the default user of both exporters, bcrypt-hashed.
        assert list(web["basic_auth_users"]) == ["scraper"]
        assert bcrypt.checkpw(b"scrape-secret", web["basic_auth_users"]["scraper"].encode())
        assert "scrape-secret" not in out["web-config.yml"]
        assert "SupplementaryGroups=monitoring-tls" in out["exporter.service"]
        # Stable across runs (idempotence).
        again = render_exporter(render, role, HARDENING, ["web-config.yml.j2"])
        assert again["web-config.yml"] == out["web-config.yml"]


def test_blackbox_modules_and_icmp_capability(render: Renderer, tmp_path: Path) -> None:
    out = render_exporter(render, "blackbox_exporter", templates=[*UNIT])
    unit = out["exporter.service"]
    flags = exec_start(unit)
    assert flags[0] == "/usr/bin/prometheus-blackbox-exporter"
    assert "--config.file=/etc/prometheus/blackbox_exporter/blackbox.yml" in flags
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "CapabilityBoundingSet=\n" in unit  # no icmp module: no raw sockets
    assert offline_exposure(unit, "prometheus-blackbox-exporter.service", tmp_path) <= 2.0

    icmp = {"blackbox_exporter_extra_modules": {"icmp": {"prober": "icmp", "timeout": "3s"}}}
    out = render("blackbox_exporter", ["blackbox.yml.j2"], INVENTORY, {"render_hosts": "mon1", **icmp})["mon1"]
    modules = yaml.safe_load(out["blackbox.yml"])["modules"]
    assert set(modules) == {"http_2xx", "http_2xx_or_401", "icmp"}
    assert modules["http_2xx"]["prober"] == "http" and modules["http_2xx"]["http"]["tls_config"] == {}
    # Prometheus' and Alertmanager's /-/healthy ask for credentials under hardening: that answer counts.
    assert modules["http_2xx_or_401"]["http"]["valid_status_codes"] == [200, 401]
    unit = render_exporter(render, "blackbox_exporter", icmp)["exporter.service"]
    assert "CapabilityBoundingSet=CAP_NET_RAW" in unit and "AmbientCapabilities=CAP_NET_RAW" in unit
    assert offline_exposure(unit, "prometheus-blackbox-exporter.service", tmp_path) <= 2.0

    hardened = render("blackbox_exporter", ["blackbox.yml.j2"], INVENTORY, {"render_hosts": "mon1", **HARDENING})[
        "mon1"
    ]
    for name, module in yaml.safe_load(hardened["blackbox.yml"])["modules"].items():
        assert module["http"]["tls_config"] == {"ca_file": "/etc/ssl/monitoring/ca.crt"}, name


@pytest.mark.skipif(BLACKBOX is None, reason="blackbox exporter binary absent: --config.check not run here")
def test_rendered_blackbox_config_passes_config_check(render: Renderer, tmp_path: Path) -> None:
    out = render("blackbox_exporter", ["blackbox.yml.j2"], INVENTORY, {"render_hosts": "mon1"})["mon1"]
    config = tmp_path / "blackbox.yml"
    config.write_text(out["blackbox.yml"])
    result = subprocess.run([BLACKBOX, "--config.check", f"--config.file={config}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_probe_jobs_go_through_the_blackbox_exporter(render: Renderer) -> None:
    config = yaml.safe_load(
        render("prometheus", ["prometheus.yml.j2"], INVENTORY, {"render_hosts": "mon1"})["mon1"]["prometheus.yml"]
    )
    jobs = jobs_of(config)
    # No alertmanager group: no alertmanager probe.
    assert [name for name in jobs if name.startswith("probe_")] == [
        "probe_backend",
        "probe_prometheus",
        "probe_grafana",
    ]
    backend = jobs["probe_backend"]
    assert backend["metrics_path"] == "/probe" and backend["params"] == {"module": ["http_2xx"]}
    assert backend["static_configs"] == [
        {
            "targets": ["http://10.1.0.11:3000/api/v1/health"],
            "labels": {"instance": "app1", "target": "http://10.1.0.11:3000/api/v1/health"},
        },
        {
            "targets": ["http://app2:3001/api/v1/health"],
            "labels": {"instance": "app2", "target": "http://app2:3001/api/v1/health"},
        },
    ]
    assert backend["relabel_configs"] == [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"target_label": "__address__", "replacement": "mon1:9115"},
    ]
    assert jobs["probe_prometheus"]["static_configs"][0]["targets"] == ["http://mon1:9090/-/healthy"]
    assert jobs["probe_grafana"]["static_configs"][0]["targets"] == ["http://mon1:3005/api/health"]
    # node_exporter: the group minus db1, which opted out.
    instances = [s["labels"]["instance"] for s in jobs["node_exporter"]["static_configs"]]
    assert sorted(instances) == ["app1", "app2", "mon1"]


def test_probe_module_is_selectable_and_no_exporter_means_no_probe(render: Renderer) -> None:
    probes = [{"job": "probe_api", "component": "backend", "path": "/api/v1/health", "module": "http_api"}]
    out = render(
        "prometheus", ["prometheus.yml.j2"], INVENTORY, {"render_hosts": "mon1", "prometheus_blackbox_probes": probes}
    )
    jobs = jobs_of(yaml.safe_load(out["mon1"]["prometheus.yml"]))
    assert jobs["probe_api"]["params"] == {"module": ["http_api"]}
    assert "probe_backend" not in jobs

    inventory = yaml.safe_load(yaml.safe_dump(INVENTORY))
    del inventory["all"]["children"]["blackbox_exporter"]
    out = render("prometheus", ["prometheus.yml.j2"], inventory, {"render_hosts": "mon1"})
    assert not [name for name in jobs_of(yaml.safe_load(out["mon1"]["prometheus.yml"])) if name.startswith("probe_")]


def test_hardened_probe_jobs_use_https_and_credentials(render: Renderer) -> None:
    out = render("prometheus", ["prometheus.yml.j2"], INVENTORY, {"render_hosts": "mon1", **HARDENING})
    jobs = jobs_of(yaml.safe_load(out["mon1"]["prometheus.yml"]))
    probe = jobs["probe_backend"]
    assert probe["scheme"] == "https"
    assert probe["tls_config"] == {"ca_file": "/etc/ssl/monitoring/ca.crt"}
    assert probe["basic_auth"] == {"username": "scraper", "password_file": "/etc/prometheus/scrape-password"}
    assert probe["static_configs"][0]["targets"] == ["https://10.1.0.11:3000/api/v1/health"]


@pytest.mark.skipif(not PROMTOOL.is_file(), reason="/usr/bin/promtool is absent: promtool check config not run")
def test_rendered_config_with_probes_passes_promtool(render: Renderer, tmp_path: Path) -> None:
    for extra in ({}, HARDENING):
        out = render("prometheus", ["prometheus.yml.j2"], INVENTORY, {"render_hosts": "mon1", **extra})
        config = tmp_path / "prometheus.yml"
        config.write_text(out["mon1"]["prometheus.yml"])
        result = subprocess.run(
            [str(PROMTOOL), "check", "config", "--syntax-only", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("role", "extra", "variable"),
    [
        ("node_exporter", "node_exporter_install_method=snap", "node_exporter_install_method"),
        ("node_exporter", "node_exporter_web_listen_address=9100", "node_exporter_web_listen_address"),
        ("node_exporter", '{"node_exporter_collectors_disabled": ["systemd"]}', "node_exporter_collectors_enabled"),
        ("node_exporter", "node_exporter_web_tls_cert_file=/x.crt", "node_exporter_web_tls_key_file"),
        (
            "blackbox_exporter",
            '{"blackbox_exporter_extra_modules": {"x": {"prober": "ftp"}}}',
            "blackbox_exporter_modules",
        ),
        ("blackbox_exporter", "monitoring_hardening=true", "blackbox_exporter_web_tls_cert_file"),
    ],
)
def test_bad_input_fails_naming_the_variable(tmp_path: Path, role: str, extra: str, variable: str) -> None:
    result = run_preflight(tmp_path, role, "-e", extra)
    assert result.returncode != 0
    assert variable in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("role", ["node_exporter", "blackbox_exporter"])
def test_good_input_passes_preflight(tmp_path: Path, role: str) -> None:
    result = run_preflight(tmp_path, role)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_exporters_share_one_implementation() -> None:
    # Install, web config, unit and service live once, in the internal role `exporter`.
    for role in ("node_exporter", "blackbox_exporter"):
        tasks = REPO / "roles" / role / "tasks"
        assert not (REPO / "roles" / role / "templates" / "web-config.yml.j2").exists()
        for name in ("install.yml", "service.yml"):
            assert "name: exporter" in (tasks / name).read_text(), f"{role}/{name} does not use the shared role"
