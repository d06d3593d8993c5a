"""The validation phase's first stage (playbooks/validate.yml, roles/monitoring/action_plugins):
typos are found with the closest declared name, the escape hatch works, no variable the project
itself sets is called a typo, inventory mistakes are found, and every problem is listed at once."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_playbook

VALIDATE = REPO / "playbooks" / "validate.yml"
LAB = REPO / "inventory" / "lab"


def load_plugin():  # noqa: ANN201 - a module
    path = REPO / "roles" / "monitoring" / "action_plugins" / "monitoring_validate.py"
    spec = importlib.util.spec_from_file_location("monitoring_validate", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["monitoring_validate"] = module
    spec.loader.exec_module(module)
    return module


plugin = load_plugin()


class YamlLoader:
    """The one DataLoader method the plugin's helpers use."""

    def load_from_file(self, path: str, trusted_as_template: bool = False) -> object:
        return yaml.safe_load(Path(path).read_text())


def declared_names() -> list[str]:
    names: set[str] = set()
    for role in plugin.stack_roles():
        names |= set(plugin.role_options(YamlLoader(), role))
    return sorted(names)


def validate(inventory: Path, *extra: str) -> tuple[int, str]:
    result = run_playbook(VALIDATE, inventory, "--tags", "validate_inputs", *extra)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("monitoring_hardning", "monitoring_hardening"),
        ("prometheus_retention", "prometheus_retention_time"),
        ("backend_workres", "backend_workers"),
        ("loki_retention_peroid", "loki_retention_period"),
        ("grafana_admin_pasword", "grafana_admin_password"),
    ],
)
def test_the_closest_declared_name_is_suggested(typo: str, meant: str) -> None:
    assert plugin.closest(typo, declared_names()) == meant


def test_every_variable_the_project_sets_is_declared() -> None:
    """No false alarm: the inventories' and the Molecule scenarios' own variables are all known."""
    declared = set(declared_names())
    found: dict[str, str] = {}
    for path in [p for p in (REPO / "inventory").rglob("*") if p.is_file() and p.suffix in (".yml", ".example")]:
        data = yaml.safe_load(path.read_text()) or {}
        if "all" not in data:
            found.update(dict.fromkeys(data, str(path.relative_to(REPO))))
    for path in (REPO / "molecule").glob("*/molecule.yml"):
        inventory = (yaml.safe_load(path.read_text()) or {}).get("provisioner", {}).get("inventory", {})
        for section in ("group_vars", "host_vars"):
            for variables in (inventory.get(section) or {}).values():
                found.update(dict.fromkeys(variables or {}, str(path.relative_to(REPO))))
    base = yaml.safe_load((REPO / ".config" / "molecule" / "config.yml").read_text())
    found.update(dict.fromkeys(base["provisioner"]["inventory"]["group_vars"]["all"], ".config/molecule/config.yml"))
    stack = {name: where for name, where in found.items() if name.startswith(plugin.STACK_PREFIXES)}
    assert len(stack) > 20, "the scan found too few variables to mean anything"
    undeclared = {name: where for name, where in stack.items() if name not in declared}
    assert undeclared == {}


def test_the_lab_inventory_is_valid() -> None:
    code, output = validate(LAB)
    assert code == 0, output


def test_typos_and_type_errors_are_all_listed_at_once_naming_variable_value_and_host() -> None:
    code, output = validate(
        LAB,
        "-e",
        json.dumps({"monitoring_hardning": True, "backend_enable_test_error": "maybe", "backend_environment": "prod"}),
    )
    assert code != 0
    assert "Invalid input, nothing was changed on any host (3 problem(s))" in output
    assert "did you mean `monitoring_hardening`?" in output
    assert 'backend_enable_test_error = "maybe": expected a boolean' in output
    assert 'backend_environment = "prod": expected one of development, production' in output
    assert "app1, app2: backend_environment" in output
    assert "argument_spec_data" not in output, "the spec is dumped"


def test_the_escape_hatch_accepts_an_operators_own_variables() -> None:
    own = {"backend_team_contact": "ops@example.com", "prometheus_site_note": "x"}
    code, output = validate(LAB, "-e", json.dumps(own))
    assert code != 0 and "backend_team_contact is not a variable of the stack" in output
    code, output = validate(
        LAB, "-e", json.dumps({**own, "monitoring_validate_ignore": ["backend_team_*", "prometheus_site_note"]})
    )
    assert code == 0, output


def test_two_components_on_one_port_are_refused() -> None:
    code, output = validate(LAB, "-e", json.dumps({"grafana_http_port": 9090}))
    assert code != 0
    assert "mon1: grafana_http_port = 9090: prometheus_port already uses port 9090 on this host" in output


def write_inventory(tmp_path: Path, groups: dict[str, list[str]]) -> Path:
    children = {name: {"hosts": dict.fromkeys(hosts)} for name, hosts in groups.items()}
    path = tmp_path / "hosts.yml"
    path.write_text(
        yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "children": children}}, sort_keys=False)
    )
    return path


def test_a_group_typo_is_refused_when_the_stack_group_is_empty(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"backends": ["app1"], "prometheus": ["mon1"]})
    code, output = validate(inventory)
    assert code != 0
    assert (
        "inventory group `backends` has hosts but the stack group `backend` has none: did you mean `backend`?" in output
    )


def test_a_consumer_without_its_producer_is_refused(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, {"backend": ["app1"], "promtail": ["app1"], "grafana": ["mon1"]})
    code, output = validate(inventory)
    assert code != 0
    assert "inventory group `promtail` has hosts (app1) but `loki` has none" in output
    assert "inventory group `grafana` has hosts (mon1) but `prometheus` has none" in output


def test_a_replica_that_is_also_the_central_store_is_refused(tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path, {"prometheus": ["prom1", "prom2"], "metrics_store": ["prom2", "store1"], "backend": ["app1"]}
    )
    code, output = validate(inventory)
    assert code != 0
    assert "host prom2 is in both `prometheus` and `metrics_store`" in output
    assert "prom1 is in both" not in output and "store1 is in both" not in output


def load_filters():  # noqa: ANN201 - a module
    path = REPO / "roles" / "monitoring" / "filter_plugins" / "monitoring.py"
    spec = importlib.util.spec_from_file_location("monitoring_filters", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_checkers_refusal_is_traced_to_the_variables_that_produced_it() -> None:
    filters = load_filters()
    rendered = (
        'server:\n  http_listen_port: 3100\nschema_config:\n  configs:\n    - from: "2024-13-01"\n'
        "limits_config:\n  x: 1\n"
    )
    sections = {
        "server": "loki_http_listen_port",
        "schema_config": "loki_schema_from",
        "limits_config": "loki_retention_period",
    }
    # Loki 3.6.6 names the value, not the line (seen with the real binary).
    refused = 'failed parsing config: /tmp/x.yml: parsing time "2024-13-01": month out of range.'
    assert filters.config_blame(refused, rendered, sections) == "loki_schema_from"
    assert filters.config_blame("yaml: unmarshal errors:\n  line 7: field x not found", rendered, sections) == (
        "loki_retention_period"
    )
    assert "names no line" in filters.config_blame("something else broke", rendered, sections)
