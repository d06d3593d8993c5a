"""monitoring_firewall role: the nftables table rendered for an inventory (per-port sets, which
ports are filtered on which host), `nft -c` validation, address detection from facts, and
argument validation.

The drop/accept behaviour itself is verified by the Molecule `stack` scenario under the
production profile (molecule/stack/verify.yml): the backend port connects from the Prometheus
host and times out (dropped) from another application host, Prometheus' port times out from a
host that is neither Grafana nor an admin source.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Renderer, run_playbook

ROLE = REPO / "roles" / "monitoring_firewall"
TEMPLATE = "monitoring-stack.nft.j2"

spec = importlib.util.spec_from_file_location(
    "monitoring_firewall_filters", ROLE / "filter_plugins" / "monitoring_firewall.py"
)
assert spec and spec.loader
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)


@pytest.fixture(autouse=True)
def private_fact_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep facts in memory: ansible.cfg caches them in .ansible/facts by host name, which the
    lab and these fixture inventories share (mon1, app1...)."""
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN", "memory")


def inventory() -> dict:
    return {
        "all": {
            "children": {
                "prometheus": {
                    "hosts": {
                        "mon1": {"monitoring_address": "10.0.0.10", "monitoring_firewall_extra_sources": ["fd00::10"]}
                    }
                },
                "loki": {"hosts": {"mon1": {}}},
                "grafana": {"hosts": {"graf1": {"monitoring_firewall_source_addresses": ["10.0.1.5"]}}},
                "backend": {"hosts": {"app1": {"ansible_host": "10.0.0.21"}, "app2": {"ansible_host": "10.0.0.22"}}},
                "promtail": {"children": {"backend": {}}},
            }
        }
    }


def parse(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """({set name: elements}, chain rules) of a rendered table."""
    sets = {}
    for m in re.finditer(r"set (\w+) \{(.*?)\n\t\}", text, re.S):
        elements = re.search(r"elements = \{ (.*) \}", m[2])
        sets[m[1]] = elements[1].split(", ") if elements else []
    chain = text.split("chain input {", 1)[1]
    rules = [line.strip() for line in chain.splitlines()[2:] if line.strip() not in ("", "}")]
    return sets, rules


def render_all(render: Renderer, extra: dict | None = None) -> dict[str, str]:
    out = render("monitoring_firewall", [TEMPLATE], inventory(), extra)
    return {host: files["monitoring-stack.nft"] for host, files in out.items()}


def test_each_port_answers_only_the_hosts_that_need_it(render: Renderer) -> None:
    tables = render_all(render, {"monitoring_firewall_backend_clients": ["203.0.113.0/24", "203.0.113.9"]})
    sets, rules = parse(tables["app1"])
    # Backend: Prometheus (its monitoring_address and extra source) + the listed clients, collapsed.
    assert sets["backend_v4"] == ["10.0.0.10", "203.0.113.0/24"]
    assert sets["backend_v6"] == ["fd00::10"]
    assert sets["promtail_v4"] == ["10.0.0.10"]
    assert sets["node_exporter_v4"] == ["10.0.0.10"]
    assert sets["ssh_v4"] == ["0.0.0.0/0"] and sets["ssh_v6"] == ["::/0"]
    # app1 runs neither Loki, Prometheus nor Grafana: those ports are not touched there.
    assert set(sets) == {f"{n}_{f}" for n in ("ssh", "backend", "promtail", "node_exporter") for f in ("v4", "v6")}
    assert rules[:2] == ['iif "lo" accept', "ct state established,related accept"]
    assert rules[2:5] == [
        "tcp dport 22 ip saddr @ssh_v4 accept",
        "tcp dport 22 ip6 saddr @ssh_v6 accept",
        'tcp dport 22 counter drop comment "ssh: source not allowed"',
    ]
    assert 'tcp dport 3000 counter drop comment "backend: source not allowed"' in rules
    assert rules.index("tcp dport 3000 ip saddr @backend_v4 accept") < rules.index(
        'tcp dport 3000 counter drop comment "backend: source not allowed"'
    )

    sets, rules = parse(tables["mon1"])
    # Loki: Promtail (backend hosts) push, Grafana queries, Prometheus scrapes.
    assert sets["loki_v4"] == ["10.0.0.10", "10.0.0.21", "10.0.0.22", "10.0.1.5"]
    assert sets["prometheus_v4"] == ["10.0.0.10", "10.0.1.5"]
    assert "backend_v4" not in sets and "grafana_v4" not in sets

    sets, _ = parse(tables["graf1"])
    assert sets["grafana_v4"] == ["0.0.0.0/0"]


def test_only_the_role_table_is_replaced(render: Renderer) -> None:
    text = render_all(render)["mon1"]
    assert "flush ruleset" not in text
    statements = [line for line in text.splitlines() if line and not line.startswith(("#", "\t", "}"))]
    assert statements == [
        "table inet monitoring_stack",
        "delete table inet monitoring_stack",
        "table inet monitoring_stack {",
    ]
    assert "type filter hook input priority filter - 10; policy accept;" in text


def test_reject_action_and_custom_ports(render: Renderer) -> None:
    tables = render_all(render, {"monitoring_firewall_action": "reject", "backend_port": 8000})
    _, rules = parse(tables["app1"])
    assert 'tcp dport 8000 counter reject with tcp reset comment "backend: source not allowed"' in rules
    assert not any("dport 3000" in r for r in rules)


def alerting_inventory() -> dict:
    data = inventory()
    data["all"]["children"]["alertmanager"] = {
        "hosts": {"mon1": {}, "am2": {"ansible_host": "10.0.0.12", "monitoring_firewall_extra_sources": ["fd00::12"]}}
    }
    return data


def test_alertmanager_answers_prometheus_and_grafana_and_gossips_only_with_its_peers(render: Renderer) -> None:
    out = render("monitoring_firewall", [TEMPLATE], alerting_inventory())
    sets, rules = parse(out["am2"]["monitoring-stack.nft"])
    assert sets["alertmanager_v4"] == ["10.0.0.10", "10.0.1.5"]
    # am2's gossip port: mon1 (its peer) only, over TCP and UDP (memberlist uses both).
    assert sets["alertmanager_cluster_v4"] == ["10.0.0.10"]
    assert sets["alertmanager_cluster_v6"] == ["fd00::10"]
    assert "tcp dport 9093 ip saddr @alertmanager_v4 accept" in rules
    assert "meta l4proto { tcp, udp } th dport 9094 ip saddr @alertmanager_cluster_v4 accept" in rules
    assert (
        'meta l4proto { tcp, udp } th dport 9094 counter drop comment "alertmanager_cluster: source not allowed"'
        in rules
    )
    sets, _ = parse(out["mon1"]["monitoring-stack.nft"])
    assert sets["alertmanager_cluster_v4"] == ["10.0.0.12"] and sets["alertmanager_cluster_v6"] == ["fd00::12"]
    # Hosts without an Alertmanager leave those ports alone.
    sets, _ = parse(out["app1"]["monitoring-stack.nft"])
    assert not any(name.startswith("alertmanager") for name in sets)


def test_the_central_store_answers_the_replicas_and_grafana_only(render: Renderer) -> None:
    inv = inventory()
    inv["all"]["children"]["metrics_store"] = {"hosts": {"store1": {"ansible_host": "10.0.0.30"}}}
    out = render("monitoring_firewall", [TEMPLATE], inv)
    sets, rules = parse(out["store1"]["monitoring-stack.nft"])
    # mon1 (the replica writes and scrapes) and graf1 (it may query the store).
    assert sets["metrics_store_v4"] == ["10.0.0.10", "10.0.1.5"]
    assert "tcp dport 9090 ip saddr @metrics_store_v4 accept" in rules
    # Hosts that are not the store leave that rule out.
    sets, _ = parse(out["app1"]["monitoring-stack.nft"])
    assert "metrics_store_v4" not in sets


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (apt-get install -y nftables)")
def test_rendered_tables_pass_nft_check(render: Renderer, tmp_path: Path) -> None:
    tables = render_all(
        render, {"monitoring_firewall_admin_sources": ["192.168.0.0/16", "192.168.3.4", "2001:db8::/32"]}
    )
    out = render("monitoring_firewall", [TEMPLATE], alerting_inventory(), {"monitoring_firewall_action": "reject"})
    tables |= {f"{host}-alerting": files["monitoring-stack.nft"] for host, files in out.items()}
    for host, text in tables.items():
        path = tmp_path / f"{host}.nft"
        path.write_text(text)
        result = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0 and "Operation not permitted" in result.stderr:
            pytest.skip("nft -c needs CAP_NET_ADMIN on this machine")
        assert result.returncode == 0, f"{host}: {result.stderr}"


def test_addresses_come_from_facts() -> None:
    hostvars = {
        "mon1": {
            "ansible_facts": {
                "all_ipv4_addresses": ["172.31.0.2", "127.0.0.1", "10.8.0.1"],
                "all_ipv6_addresses": ["fe80::1", "fd00::2", "::1"],
            },
            "ansible_host": "mon1.example.com",
        },
        "nat1": {
            "ansible_facts": {"all_ipv4_addresses": ["10.1.0.2"]},
            "monitoring_firewall_extra_sources": ["198.51.100.7"],
        },
        "pinned": {
            "ansible_facts": {"all_ipv4_addresses": ["10.2.0.2"]},
            "monitoring_firewall_source_addresses": ["10.9.9.9"],
        },
    }
    assert filters.monitoring_firewall_host_addresses("mon1", hostvars) == ["172.31.0.2", "10.8.0.1", "fd00::2"]
    assert filters.monitoring_firewall_host_addresses("nat1", hostvars) == ["10.1.0.2", "198.51.100.7"]
    assert filters.monitoring_firewall_host_addresses("pinned", hostvars) == ["10.9.9.9"]
    rules = filters.monitoring_firewall_rules(
        [{"name": "loki", "port": 3100, "hosts": ["mon1", "nat1"], "sources": ["10.8.0.0/24"], "sources_var": "x"}],
        hostvars,
    )
    assert rules == [
        {
            "name": "loki",
            "port": 3100,
            "protocols": ["tcp"],
            "v4": ["10.1.0.2", "10.8.0.0/24", "172.31.0.2", "198.51.100.7"],
            "v6": ["fd00::2"],
        }
    ]
    assert filters.monitoring_firewall_covers("10.8.0.77", ["10.8.0.0/24"])
    assert not filters.monitoring_firewall_covers("10.9.0.77", ["10.8.0.0/24", "::/0"])


def run_check(tmp_path: Path, extra: dict, facts: bool = True) -> subprocess.CompletedProcess[str]:
    inv_data = inventory()
    for group in inv_data["all"]["children"].values():
        for hostvars in (group.get("hosts") or {}).values():
            hostvars["ansible_connection"] = "local"
            hostvars["ansible_python_interpreter"] = "{{ ansible_playbook_python }}"
    if not facts:  # graf1 has neither facts nor pinned or literal addresses
        del inv_data["all"]["children"]["grafana"]["hosts"]["graf1"]["monitoring_firewall_source_addresses"]
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(inv_data))
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump([{"name": "firewall", "hosts": "mon1", "gather_facts": False, "roles": [{"role": str(ROLE)}]}])
    )
    # --tags preflight: validation only, nothing on this machine is installed or loaded.
    return run_playbook(play, inv, "--check", "--tags", "monitoring_firewall_preflight", "-e", json.dumps(extra))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"monitoring_firewall_action": "log"}, "monitoring_firewall_action"),
        ({"monitoring_firewall_state": "gone"}, "monitoring_firewall_state"),
        ({"monitoring_firewall_grafana_port": 9090}, "must be distinct ports 1-65535"),
        ({"monitoring_firewall_ssh_port": 70000}, "must be distinct ports 1-65535"),
        ({"monitoring_firewall_table": "monitoring-stack"}, "monitoring_firewall_table a name of letters"),
        (
            {"monitoring_firewall_admin_sources": ["ops.example.com"]},
            "monitoring_firewall_admin_sources: 'ops.example.com' is not",
        ),
        (
            {"monitoring_firewall_loki_clients": ["10.0.0.0/33"]},
            "monitoring_firewall_loki_clients: '10.0.0.0/33' is not",
        ),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, extra: dict, expected: str) -> None:
    result = run_check(tmp_path, extra)
    assert result.returncode != 0
    assert expected in " ".join((result.stdout + result.stderr).split())


def test_missing_facts_name_the_host(tmp_path: Path) -> None:
    result = run_check(tmp_path, {}, facts=False)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "no source address known for graf1" in out
    assert "not with --limit" in out


def test_valid_input_passes_preflight(tmp_path: Path) -> None:
    result = run_check(tmp_path, {"monitoring_firewall_admin_sources": ["192.168.0.0/16"]})
    assert result.returncode == 0, result.stdout[-3000:]
