"""alertmanager role: alertmanager.yml from the variables (checked by the real amtool), the cluster
from the inventory, the web config, the unit's sandbox, preflight; and Prometheus' alerting
section derived from the alertmanager group (checked by the real promtool).

Behaviour (a pair that forms a cluster, one notification per alert through a restart, resolved
notifications) is verified by the Molecule scenario `alerting`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml
from conftest import REPO, offline_exposure, run_preflight

TEMPLATES = ["alertmanager.yml.j2", "web-config.yml.j2", "alertmanager.service.j2"]
AMTOOL = shutil.which("amtool")
PROMTOOL = shutil.which("promtool")
CHECKER = REPO / "roles" / "alertmanager" / "files" / "check_web_config.py"
INVENTORY = {
    "all": {
        "hosts": {
            "mon1": {},
            "am2": {"monitoring_address": "10.0.0.12", "alertmanager_cluster_port": 9194},
            "app1": {},
        },
        "children": {
            "prometheus": {"hosts": {"mon1": {}}},
            "alertmanager": {"hosts": {"mon1": {}, "am2": {}}},
            "backend": {"hosts": {"app1": {}}},
        },
    }
}
RECEIVERS = {
    "alertmanager_route_receiver": "ops",
    "alertmanager_webhook_receivers": [{"name": "ops", "url": "http://hooks.example:9000/alert"}],
    "alertmanager_email_receivers": [{"name": "mail", "to": "oncall@example.org"}],
    "alertmanager_receivers": [
        {"name": "chat", "slack_configs": [{"api_url": "https://slack.example/x", "channel": "#a"}]}
    ],
    "alertmanager_routes": [{"matchers": ['severity="critical"'], "receiver": "mail", "continue": True}],
    "alertmanager_global": {"smtp_smarthost": "smtp.example.org:587", "smtp_from": "am@example.org"},
}


def flags(unit: str) -> list[str]:
    start = unit.index("ExecStart=")
    block = unit[start : unit.index("ExecReload=")]
    return [part.strip(" \\\n") for part in block.split("\\\n")[1:]]


def amtool_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if AMTOOL is None:
        pytest.skip("SKIPPED: amtool is not installed (Debian's prometheus-alertmanager ships it; see .ci/run)")
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    return subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, check=False)


def test_a_pair_gossips_with_each_other(render) -> None:
    out = render("alertmanager", TEMPLATES, INVENTORY)
    mon1, am2 = flags(out["mon1"]["alertmanager.service"]), flags(out["am2"]["alertmanager.service"])
    # Each host names every other host of the group, at the peer's own address and gossip port.
    assert [f for f in mon1 if f.startswith("--cluster.peer=")] == ["--cluster.peer=10.0.0.12:9194"]
    assert [f for f in am2 if f.startswith("--cluster.peer=")] == ["--cluster.peer=mon1:9094"]
    assert "--cluster.listen-address=0.0.0.0:9094" in mon1
    assert "--cluster.listen-address=0.0.0.0:9194" in am2
    assert "--web.external-url=http://10.0.0.12:9093" in am2
    assert "--web.config.file=/etc/alertmanager/web-config.yml" in mon1
    # Listing the interfaces to pick an advertise address needs netlink.
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" in out["mon1"]["alertmanager.service"]


def test_a_single_alertmanager_runs_without_cluster(render) -> None:
    inventory = {"all": {"children": {"alertmanager": {"hosts": {"am1": {}}}}}}
    out = render("alertmanager", TEMPLATES, inventory, {"alertmanager_install_method": "package"})["am1"]
    unit = out["alertmanager.service"]
    assert "--cluster.listen-address=" in flags(unit)
    assert not any(f.startswith("--cluster.peer") for f in flags(unit))
    assert "ExecStart=/usr/bin/prometheus-alertmanager" in unit
    assert "User=prometheus" in unit and "--storage.path=/var/lib/prometheus/alertmanager" in flags(unit)
    assert "AF_NETLINK" not in unit


def test_config_from_variables_passes_amtool(render, tmp_path: Path) -> None:
    out = render("alertmanager", TEMPLATES, INVENTORY, RECEIVERS)["mon1"]
    config = yaml.safe_load(out["alertmanager.yml"])
    assert config["route"]["receiver"] == "ops"
    assert config["route"]["group_by"] == ["alertname", "instance"]
    assert config["route"]["routes"] == RECEIVERS["alertmanager_routes"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["ops"]["webhook_configs"] == [{"url": "http://hooks.example:9000/alert", "send_resolved": True}]
    assert receivers["mail"]["email_configs"] == [{"to": "oncall@example.org", "send_resolved": False}]
    assert receivers["chat"] == RECEIVERS["alertmanager_receivers"][0]
    assert config["global"]["smtp_from"] == "am@example.org" and config["global"]["resolve_timeout"] == "5m"
    assert config["inhibit_rules"][0]["equal"] == ["alertname", "instance"]
    assert config["templates"] == ["/etc/alertmanager/templates/*.tmpl"]
    result = amtool_check(out["alertmanager.yml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_config_has_a_receiver_for_the_route_and_passes_amtool(render, tmp_path: Path) -> None:
    config = render("alertmanager", ["alertmanager.yml.j2"], INVENTORY)["mon1"]["alertmanager.yml"]
    assert yaml.safe_load(config)["receivers"] == [{"name": "default"}]
    result = amtool_check(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_refuses_a_route_to_an_unknown_receiver(render, tmp_path: Path) -> None:
    """The validate: of alertmanager.yml is amtool: this config never replaces a running one."""
    extra = RECEIVERS | {"alertmanager_routes": [{"matchers": ['team="db"'], "receiver": "nobody"}]}
    config = render("alertmanager", ["alertmanager.yml.j2"], INVENTORY, extra)["mon1"]["alertmanager.yml"]
    result = amtool_check(config, tmp_path)
    assert result.returncode != 0
    assert 'undefined receiver "nobody"' in result.stdout + result.stderr


def test_web_config_hashes_users_and_the_checker_accepts_it(render, tmp_path: Path) -> None:
    extra = {"alertmanager_web_basic_auth_users": {"prometheus": "am-secret", "grafana": "other"}}
    first = render("alertmanager", ["web-config.yml.j2"], INVENTORY, extra)["mon1"]["web-config.yml"]
    users = yaml.safe_load(first)["basic_auth_users"]
    assert bcrypt.checkpw(b"am-secret", users["prometheus"].encode())
    assert "am-secret" not in first
    second = render("alertmanager", ["web-config.yml.j2"], INVENTORY, extra)["mon1"]["web-config.yml"]
    assert second == first, "stable salts: a second run changes nothing"
    path = tmp_path / "web.yml"
    path.write_text(first)
    ok = subprocess.run([sys.executable, str(CHECKER), str(path)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout
    path.write_text(first.replace(users["prometheus"], "am-secret"))
    plain = subprocess.run([sys.executable, str(CHECKER), str(path)], capture_output=True, text=True, check=False)
    assert plain.returncode == 1 and "not bcrypt hashes" in plain.stdout
    path.write_text('{"tls_server_config": {"cert_file": "/nonexistent.crt", "key_file": "/nonexistent.key"}}')
    missing = subprocess.run([sys.executable, str(CHECKER), str(path)], capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "do not load together" in missing.stdout


def test_hardened_unit_exposure(render, tmp_path: Path) -> None:
    unit = render("alertmanager", ["alertmanager.service.j2"], INVENTORY)["mon1"]["alertmanager.service"]
    assert offline_exposure(unit, "alertmanager.service", tmp_path) <= 2.0


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ('{"alertmanager_version": "latest"}', "alertmanager_version"),
        ('{"alertmanager_route_group_wait": "soon"}', "alertmanager_route_group_wait"),
        ('{"alertmanager_cluster_port": 9093}', "alertmanager_cluster_listen_address"),
        ('{"alertmanager_route_group_interval": "10s"}', "alertmanager_route_group_interval"),
        ('{"alertmanager_web_tls_cert_file": "/x.crt"}', "alertmanager_web_tls_key_file"),
        ('{"alertmanager_webhook_receivers": [{"name": "a", "url": "hooks:9000"}]}', "alertmanager_webhook_receivers"),
        (
            '{"alertmanager_hardening": true, "alertmanager_web_tls_cert_file": "/c",'
            ' "alertmanager_web_tls_key_file": "/k"}',
            "alertmanager_web_basic_auth_users",
        ),
    ],
)
def test_bad_input_fails_naming_the_variable(tmp_path: Path, extra: str, variable: str) -> None:
    # localhost and a peer: a pair, whose second Alertmanager waits the peer timeout.
    pair = "all:\n  children:\n    alertmanager:\n      hosts: {localhost: {}, am2: {}}\n"
    result = run_preflight(tmp_path, "alertmanager", "-e", extra, inventory=pair)
    assert result.returncode != 0
    assert variable in result.stdout, result.stdout[-3000:]


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    result = run_preflight(tmp_path, "alertmanager", "-e", "alertmanager_install_method=package")
    assert result.returncode == 0, result.stdout[-3000:]


# --------------------------------------------------------------------------- Prometheus' side


def prometheus_config(render, extra: dict | None = None) -> tuple[dict, str]:
    text = render("prometheus", ["prometheus.yml.j2"], INVENTORY, {"render_hosts": "mon1"} | (extra or {}))["mon1"][
        "prometheus.yml"
    ]
    return yaml.safe_load(text), text


def test_prometheus_sends_to_every_alertmanager_without_its_replica_label(render, tmp_path: Path) -> None:
    config, text = prometheus_config(render)
    assert config["global"]["external_labels"] == {"replica": "mon1"}
    alerting = config["alerting"]
    assert alerting["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    (entry,) = alerting["alertmanagers"]
    assert (entry["scheme"], entry["api_version"]) == ("http", "v2")
    # Each Alertmanager individually, at its own address (a VIP in front would break deduplication).
    assert sorted(entry["static_configs"][0]["targets"]) == ["10.0.0.12:9093", "mon1:9093"]
    if PROMTOOL is None:
        pytest.skip("SKIPPED: promtool is not installed")
    path = tmp_path / "prometheus.yml"
    path.write_text(text.replace("/etc/prometheus/rules/*.yml", str(tmp_path / "rules" / "*.yml")))
    result = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_reaches_hardened_alertmanagers_with_tls_and_a_password_file(render, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    extra = {
        "monitoring_hardening": True,
        "monitoring_tls_ca_file": str(ca),
        "monitoring_tls_cert_file": "/etc/monitoring/tls/host.crt",
        "monitoring_tls_key_file": "/etc/monitoring/tls/host.key",
        "prometheus_alertmanager_basic_auth_username": "prometheus",
        "prometheus_alertmanager_basic_auth_password": "am-secret",
        "prometheus_replica_label": "",
        "prometheus_external_labels": {"site": "eu1"},
    }
    config, text = prometheus_config(render, extra)
    (entry,) = config["alerting"]["alertmanagers"]
    assert entry["scheme"] == "https"
    assert entry["tls_config"] == {"ca_file": str(ca)}
    assert entry["basic_auth"] == {"username": "prometheus", "password_file": "/etc/prometheus/alertmanager-password"}
    assert "am-secret" not in text
    assert "alert_relabel_configs" not in config["alerting"]
    assert config["global"]["external_labels"] == {"site": "eu1"}


def test_explicit_alertmanagers_override_the_group(render) -> None:
    override = [{"static_configs": [{"targets": ["am.example:9093"]}]}]
    config, _ = prometheus_config(render, {"prometheus_alertmanagers": override})
    assert config["alerting"]["alertmanagers"] == override
