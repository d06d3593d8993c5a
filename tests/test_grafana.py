"""Rendering and argument checks of the grafana role (no Grafana binary needed)."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import conftest
import pytest
import yaml
from conftest import REPO, run_playbook

TEMPLATES = ["grafana.ini.j2", "datasources.yml.j2", "dashboards.yml.j2", "grafana-server.service.j2"]
INVENTORY = {
    "all": {
        "children": {
            "prometheus": {"hosts": {"mon1": {"monitoring_address": "mon1.example.net"}}},
            "loki": {"hosts": {"mon1": None}},
            "grafana": {"hosts": {"mon1": None}},
            "backend": {"hosts": {"app1": None, "app2": None}},
        }
    }
}
HARDENED = {
    "monitoring_hardening": True,
    "monitoring_tls_ca_file": "/etc/pki/monitoring/ca.pem",
    "monitoring_tls_cert_file": "/etc/pki/monitoring/mon1.pem",
    "monitoring_tls_key_file": "/etc/pki/monitoring/mon1.key",
    "grafana_admin_password": "a-long-vault-password",
    "grafana_secret_key": "0123456789abcdef0123",
    "grafana_prometheus_basic_auth_user": "grafana",
    "grafana_prometheus_basic_auth_password": "scrape-secret",
}


@pytest.fixture(autouse=True)
def _callbacks_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible-core 2.19 aborts on ANSIBLE_CALLBACKS_ENABLED="" (set by conftest.ansible_env): drop it."""
    original = conftest.ansible_env

    def patched() -> dict[str, str]:
        env = original()
        if env.get("ANSIBLE_CALLBACKS_ENABLED") == "":
            del env["ANSIBLE_CALLBACKS_ENABLED"]
        return env

    monkeypatch.setattr(conftest, "ansible_env", patched)


@pytest.fixture
def render_grafana(render, tmp_path: Path):
    """Render the grafana templates for the grafana host mon1 only."""

    def _render(templates: list[str], inventory: dict = INVENTORY, extra: dict | None = None) -> dict[str, str]:
        # tests/playbooks/render.yml does not create the per-host output directory itself.
        (tmp_path / "out" / "mon1").mkdir(parents=True, exist_ok=True)
        return render("grafana", templates, inventory, {"render_hosts": "grafana"} | (extra or {}))["mon1"]

    return _render


def parse_ini(text: str) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None, strict=True)
    ini.read_string(text)
    return ini


def datasources(rendered: dict[str, str]) -> dict[str, dict]:
    doc = yaml.safe_load(rendered["datasources.yml"])
    assert doc["apiVersion"] == 1
    return {ds["uid"]: ds for ds in doc["datasources"]}


def test_lab_config(render_grafana) -> None:
    out = render_grafana(TEMPLATES, INVENTORY)
    ini = parse_ini(out["grafana.ini"])
    assert ini["server"]["http_port"] == "3005"
    assert ini["server"]["protocol"] == "http"
    assert ini["server"]["root_url"] == "http://mon1.example.net:3005/"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["analytics"]["reporting_enabled"] == "false"
    assert ini["analytics"]["check_for_updates"] == "false"
    assert ini["security"]["disable_gravatar"] == "true"
    assert ini["security"]["cookie_secure"] == "false"
    assert "secret_key" not in ini["security"], "an empty secret key keeps Grafana's own default"
    sources = datasources(out)
    assert sources["prometheus"]["url"] == "http://mon1.example.net:9090"
    assert sources["prometheus"]["isDefault"] is True
    assert sources["loki"]["url"] == "http://mon1.example.net:3100"
    assert "basicAuth" not in sources["prometheus"]
    assert "secureJsonData" not in sources["prometheus"]
    check_provider(out)
    check_dashboard_datasources_provisioned(out)
    check_unit(out["grafana-server.service"], "/opt/grafana/12.3.2/bin/grafana")


def test_hardened_config(render_grafana) -> None:
    out = render_grafana(TEMPLATES, INVENTORY, HARDENED)
    ini = parse_ini(out["grafana.ini"])
    assert ini["server"]["protocol"] == "https"
    assert ini["server"]["cert_file"] == "/etc/pki/monitoring/mon1.pem"
    assert ini["server"]["cert_key"] == "/etc/pki/monitoring/mon1.key"
    assert ini["server"]["root_url"] == "https://mon1.example.net:3005/"
    assert ini["security"]["cookie_secure"] == "true"
    assert ini["security"]["secret_key"] == '"""0123456789abcdef0123"""'
    assert ini["security"]["admin_password"] == '"""a-long-vault-password"""'
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["analytics"]["reporting_enabled"] == "false"
    sources = datasources(out)
    prom, loki = sources["prometheus"], sources["loki"]
    assert prom["url"] == "https://mon1.example.net:9090"
    assert loki["url"] == "https://mon1.example.net:3100"
    assert prom["basicAuth"] is True
    assert prom["basicAuthUser"] == "grafana"
    assert prom["secureJsonData"]["basicAuthPassword"] == "scrape-secret"
    for ds in (prom, loki):
        assert ds["jsonData"]["tlsAuthWithCACert"] is True
        assert ds["jsonData"]["tlsSkipVerify"] is False
        assert ds["secureJsonData"]["tlsCACert"] == "$__file{/etc/pki/monitoring/ca.pem}"


def test_loki_datasource_absent_without_loki_hosts(render_grafana) -> None:
    inventory = json.loads(json.dumps(INVENTORY))
    del inventory["all"]["children"]["loki"]
    out = render_grafana(["datasources.yml.j2"], inventory)
    doc = yaml.safe_load(out["datasources.yml"])
    assert [ds["uid"] for ds in doc["datasources"]] == ["prometheus"]
    # Neither Loki nor an Alertmanager in this inventory: a datasource provisioned before is removed.
    assert doc["deleteDatasources"] == [{"name": "Loki", "orgId": 1}, {"name": "Alertmanager", "orgId": 1}]


ALERTING_INVENTORY = json.loads(json.dumps(INVENTORY))
ALERTING_INVENTORY["all"]["children"]["alertmanager"] = {
    "hosts": {"am1": {"monitoring_address": "am1.example.net"}, "am2": None}
}


def test_alertmanager_datasource_from_the_inventory(render_grafana, tmp_path: Path) -> None:
    """The first Alertmanager of the group, as it serves; Prometheus' API; basic auth under hardening."""
    lab = datasources(render_grafana(["datasources.yml.j2"], ALERTING_INVENTORY))
    assert list(lab) == ["prometheus", "loki", "alertmanager"]
    am = lab["alertmanager"]
    assert (am["type"], am["url"], am["isDefault"]) == ("alertmanager", "http://am1.example.net:9093", False)
    assert am["jsonData"]["implementation"] == "prometheus"
    assert "basicAuth" not in am

    hardened = HARDENED | {
        "grafana_alertmanager_basic_auth_user": "grafana",
        "grafana_alertmanager_basic_auth_password": "am-secret",
    }
    out = render_grafana(["datasources.yml.j2"], ALERTING_INVENTORY, hardened)
    am = datasources(out)["alertmanager"]
    assert am["url"] == "https://am1.example.net:9093"
    assert (am["basicAuth"], am["basicAuthUser"]) == (True, "grafana")
    assert am["secureJsonData"] == {
        "tlsCACert": "$__file{/etc/pki/monitoring/ca.pem}",
        "basicAuthPassword": "am-secret",
    }
    assert datasources(out)["prometheus"]["secureJsonData"]["basicAuthPassword"] == "scrape-secret"

    accepted = check("datasources", out["datasources.yml"], "prometheus,loki,alertmanager", tmp_path)
    assert accepted.returncode == 0, accepted.stdout
    mimic = out["datasources.yml"].replace("implementation: prometheus", "implementation: grafana")
    refused = check("datasources", mimic, "prometheus,loki,alertmanager", tmp_path)
    assert refused.returncode == 1 and "jsonData.implementation is 'grafana'" in refused.stdout


def check_provider(rendered: dict[str, str]) -> None:
    (provider,) = yaml.safe_load(rendered["dashboards.yml"])["providers"]
    assert provider["folder"] == "ClientForge"
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["updateIntervalSeconds"] == 30
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def check_dashboard_datasources_provisioned(rendered: dict[str, str]) -> None:
    provisioned = set(datasources(rendered))
    for path in sorted((REPO / "files" / "dashboards").glob("*.json")):
        refs = {json.loads(m)["uid"] for m in re.findall(r'"datasource"\s*:\s*(\{[^{}]*\})', path.read_text())}
        refs = {uid for uid in refs if not uid.startswith("-- ")}
        assert refs and refs <= provisioned, f"{path.name} uses {refs - provisioned}, not provisioned"


def check_unit(unit: str, binary: str) -> None:
    lines = set(unit.splitlines())
    home = binary.rsplit("/bin/", 1)[0]
    assert f"ExecStart={binary} server --homepath={home} --config=/etc/grafana/grafana.ini" in lines
    for directive in (
        "User=grafana",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/grafana /var/log/grafana",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectHome=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "UMask=0027",
    ):
        assert directive in lines, directive


def test_package_install_unit(render_grafana) -> None:
    out = render_grafana(["grafana-server.service.j2"], INVENTORY, {"grafana_install_method": "package"})
    check_unit(out["grafana-server.service"], "/usr/share/grafana/bin/grafana")


# --------------------------------------------------------------------------- argument checks


def run_role(tmp_path: Path, extra: dict, tasks_from: str | None = None):
    playbook = tmp_path / "play.yml"
    include = {"name": "grafana"} | ({"tasks_from": tasks_from} if tasks_from else {})
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Apply the grafana role",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [{"name": "Run the role", "ansible.builtin.include_role": include}],
                }
            ]
        )
    )
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_python_interpreter": "python3"}}}}))
    return run_playbook(playbook, inventory, "--check", "-e", json.dumps({"grafana_artifacts_dir": ""} | extra))


@pytest.mark.parametrize(
    "extra,variable",
    [
        ({"grafana_install_method": "bogus"}, "grafana_install_method"),
        ({"grafana_log_level": "verbose"}, "grafana_log_level"),
        ({"grafana_version": "latest"}, "grafana_version"),
        ({"grafana_http_port": 70000}, "grafana_http_port"),
        (HARDENED | {"grafana_admin_password": "admin"}, "grafana_admin_password"),
        (HARDENED | {"grafana_secret_key": ""}, "grafana_secret_key"),
        (
            HARDENED
            | {
                "grafana_prometheus_url": "https://mon1:9090",
                "grafana_prometheus_basic_auth_user": "",
                "grafana_prometheus_basic_auth_password": "",
            },
            "grafana_prometheus_basic_auth_user",
        ),
        ({"grafana_prometheus_url": "mon1:9090"}, "grafana_prometheus_url"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, extra: dict, variable: str) -> None:
    result = run_role(tmp_path, extra)
    assert result.returncode != 0, result.stdout[-2000:]
    assert variable in result.stdout, result.stdout[-3000:]
    assert "a-long-vault-password" not in result.stdout + result.stderr


def test_good_hardened_settings_pass_preflight(tmp_path: Path) -> None:
    result = run_role(tmp_path, HARDENED, tasks_from="preflight.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "a-long-vault-password" not in result.stdout + result.stderr


CHECKER = REPO / "roles" / "grafana" / "files" / "check_provisioning.py"


def check(kind: str, text: str, expected: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{kind}.yml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, str(CHECKER), kind, str(path), expected], capture_output=True, text=True, check=False
    )


def test_the_provisioning_checker_accepts_what_the_role_writes_and_refuses_breakage(
    render_grafana, tmp_path: Path
) -> None:
    """The validate: of the provisioning files: a file Grafana would load wrongly never replaces a good one."""
    out = render_grafana(["datasources.yml.j2", "dashboards.yml.j2"], INVENTORY, HARDENED)
    datasources, dashboards = out["datasources.yml"], out["dashboards.yml"]
    assert check("datasources", datasources, "prometheus,loki", tmp_path).returncode == 0
    assert check("dashboards", dashboards, "/etc/grafana/dashboards", tmp_path).returncode == 0

    wrong_uid = check("datasources", datasources.replace("uid: loki", "uid: logs"), "prometheus,loki", tmp_path)
    assert wrong_uid.returncode == 1 and "datasource UIDs are ['prometheus', 'logs']" in wrong_uid.stdout
    not_yaml = check("datasources", datasources + "\n  - [unclosed", "prometheus,loki", tmp_path)
    assert not_yaml.returncode == 1
    bad_url = check("datasources", datasources.replace('"https://', '"ftp://', 1), "prometheus,loki", tmp_path)
    assert bad_url.returncode == 1 and "is not an http(s) URL" in bad_url.stdout
    elsewhere = check("dashboards", dashboards, "/srv/dashboards", tmp_path)
    assert elsewhere.returncode == 1 and "not '/srv/dashboards'" in elsewhere.stdout
