"""The shipped inventories parse, wire the groups the playbooks expect, and the production
example refuses its placeholder secrets before any host is touched."""

from __future__ import annotations

import json
import subprocess

from conftest import REPO, ansible_env, run_playbook

PRODUCTION = REPO / "inventory" / "production.example"
LAB = REPO / "inventory" / "lab"
REAL_SECRETS = {
    "vault_prometheus_admin_password": "pw-A-9f8e7d",
    "vault_prometheus_grafana_password": "pw-B-6c5b4a",
    "vault_prometheus_scrape_password": "pw-E-1f2e3d",
    "vault_grafana_admin_password": "pw-C-3e2d1c",
    "vault_grafana_secret_key": "key-D-0a9b8c",
    "vault_alertmanager_prometheus_password": "pw-E-7f6e5d",
    "vault_alertmanager_grafana_password": "pw-F-4c3b2a",
    "vault_alertmanager_loki_password": "pw-G-1a0b9c",
}


def inventory_groups(path: object) -> dict:
    out = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True, env=ansible_env(), check=True
    )
    return json.loads(out.stdout)


def hosts_of(inventory: dict, group: str) -> set[str]:
    entry = inventory.get(group, {})
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= hosts_of(inventory, child)
    return found


def test_both_inventories_define_every_component_group() -> None:
    for path in (PRODUCTION, LAB):
        inventory = inventory_groups(path)
        for group in ("backend", "prometheus", "loki", "grafana", "promtail", "alertmanager"):
            assert hosts_of(inventory, group), f"{path.name}: group {group} has no hosts"
        assert hosts_of(inventory, "promtail") == hosts_of(inventory, "backend")
        # node_exporter on every host; the blackbox exporter next to Prometheus.
        assert hosts_of(inventory, "node_exporter") == set(inventory["_meta"]["hostvars"]) | hosts_of(inventory, "all")
        assert hosts_of(inventory, "blackbox_exporter") == hosts_of(inventory, "prometheus")
    # A pair in production: one cluster, each alert notified once.
    assert len(hosts_of(inventory_groups(PRODUCTION), "alertmanager")) == 2


def test_production_example_passes_syntax_check() -> None:
    for playbook in (
        "site.yml",
        "playbooks/smoke.yml",
        "playbooks/status.yml",
        "playbooks/logs.yml",
        "playbooks/summary.yml",
    ):
        result = run_playbook(REPO / playbook, PRODUCTION, "--syntax-check")
        assert result.returncode == 0, result.stdout + result.stderr


VALIDATE = REPO / "playbooks" / "validate.yml"


def test_hardening_preflight_refuses_placeholder_secrets_and_names_them() -> None:
    result = run_playbook(VALIDATE, PRODUCTION, "--tags", "validate_inputs")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for name in (
        "grafana_admin_password",
        "grafana_secret_key",
        "prometheus_web_basic_auth_users.admin",
        "alertmanager_web_basic_auth_users.prometheus",
        "prometheus_alertmanager_basic_auth_password",
        "prometheus_scrape_basic_auth_password",
    ):
        assert name in output
    assert "CHANGE_ME" not in output.split("still hold")[0], "a secret value was printed"


def test_hardening_preflight_accepts_real_secrets_without_printing_them() -> None:
    result = run_playbook(VALIDATE, PRODUCTION, "--tags", "validate_inputs", "-e", json.dumps(REAL_SECRETS))
    assert result.returncode == 0, result.stdout + result.stderr
    for secret in REAL_SECRETS.values():
        assert secret not in result.stdout + result.stderr
