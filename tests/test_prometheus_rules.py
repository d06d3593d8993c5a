"""Unit tests of the prometheus role's recording and alerting rules, run by promtool.

The rule files are templates: they are rendered for a few inventories (all components, no
Loki, a component skipped in the validation phase) exactly as the role renders them, checked
with ``promtool check rules`` and tested with ``promtool test rules`` against the unit tests
in roles/prometheus/files/tests (written for the role's default variables).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import run_preflight

ROLE = Path(__file__).resolve().parent.parent / "roles" / "prometheus"
TESTS = ROLE / "files" / "tests"
PROMTOOL = "/usr/bin/promtool"
RULE_TEMPLATES = sorted(p.name for p in (ROLE / "templates").glob("*.rules.yml.j2"))
APP_METRICS = ROLE.parent.parent / "app" / "src" / "clientforge_backend" / "metrics.py"

pytestmark = pytest.mark.skipif(
    not Path(PROMTOOL).is_file(), reason=f"{PROMTOOL} is absent (apt-get install prometheus provides it)"
)

ALL_COMPONENTS = {
    "all": {
        "hosts": {"mon1": {}, "app1": {}, "logs1": {}},
        "children": {
            "prometheus": {"hosts": {"mon1": {}}},
            "grafana": {"hosts": {"mon1": {}}},
            "loki": {"hosts": {"logs1": {}}},
            "backend": {"hosts": {"app1": {}}},
            "promtail": {"children": {"backend": {}}},
            "node_exporter": {"hosts": {"mon1": {}, "app1": {}, "logs1": {}}},
        },
    }
}
NO_LOKI = copy.deepcopy(ALL_COMPONENTS)
del NO_LOKI["all"]["children"]["loki"]
# The lab without the Loki/Promtail artifacts: the validation phase skipped them on their hosts.
SKIPPED = copy.deepcopy(ALL_COMPONENTS)
SKIPPED["all"]["hosts"]["logs1"] = {"release_artifact_skipped": {"loki": True}}
SKIPPED["all"]["hosts"]["app1"] = {"release_artifact_skipped": {"promtail": True}}
# ... and Grafana's archive on the monitoring host, which probes the stack's URLs.
SKIPPED["all"]["hosts"]["mon1"] = {"release_artifact_skipped": {"grafana": True}}
SKIPPED["all"]["children"]["blackbox_exporter"] = {"hosts": {"mon1": {}}}
NO_BACKEND_NO_NODES = copy.deepcopy(ALL_COMPONENTS)
del NO_BACKEND_NO_NODES["all"]["children"]["backend"]
del NO_BACKEND_NO_NODES["all"]["children"]["node_exporter"]
NO_BACKEND_NO_NODES["all"]["children"]["promtail"] = {"hosts": {"app1": {}}}

# Two replicas writing to a central store: each replica watches its remote-write queue.
HA_PAIR = copy.deepcopy(ALL_COMPONENTS)
HA_PAIR["all"]["hosts"]["prom2"] = {}
HA_PAIR["all"]["hosts"]["store1"] = {}
HA_PAIR["all"]["children"]["prometheus"] = {"hosts": {"mon1": {}, "prom2": {}}}
HA_PAIR["all"]["children"]["metrics_store"] = {"hosts": {"store1": {}}}
EVERY_FILE = ["targets.rules.yml", "backend.rules.yml", "backend-slo.rules.yml", "loki.rules.yml", "node.rules.yml"]
# The probe alert comes with a blackbox exporter (only the SKIPPED inventory has one).
WITH_PROBES = [*EVERY_FILE, "probes.rules.yml"]
INVENTORIES = {
    "all-components": (ALL_COMPONENTS, EVERY_FILE),
    "no-loki": (NO_LOKI, [f for f in EVERY_FILE if f != "loki.rules.yml"]),
    "loki-skipped": (SKIPPED, [f for f in WITH_PROBES if f != "loki.rules.yml"]),
    "no-backend-no-node-exporter": (NO_BACKEND_NO_NODES, ["targets.rules.yml", "loki.rules.yml"]),
    "ha-pair-with-store": (HA_PAIR, [*EVERY_FILE, "remote-write.rules.yml"]),
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, check=False)


def render_rules(render, inventory: dict, extra_vars: dict | None = None) -> tuple[list[str], dict[str, str], dict]:
    """(rule files the role installs, {rule file: rendered text of every template}, prometheus.yml)."""
    variables = {"render_hosts": "mon1", "render_facts": ["__prometheus_role_rule_files"], **(extra_vars or {})}
    out = render("prometheus", [*RULE_TEMPLATES, "prometheus.yml.j2"], inventory, variables)["mon1"]
    installed = json.loads(out["facts.json"])["__prometheus_role_rule_files"]
    rules = {name.removesuffix(".j2"): out[name.removesuffix(".j2")] for name in RULE_TEMPLATES}
    return installed, rules, yaml.safe_load(out["prometheus.yml"])


def test_test_files_use_only_rendered_rule_files() -> None:
    """Every unit test file names the rule files it tests; together they cover every template."""
    tested = {
        line.split("../rules/")[1].strip()
        for t in TESTS.glob("*_test.yml")
        for line in t.read_text().splitlines()
        if "../rules/" in line
    }
    assert tested == {name.removesuffix(".j2") for name in RULE_TEMPLATES}


def test_every_alert_has_firing_and_quiet_cases() -> None:
    """Each alert of every template is expected to fire in some test and to stay silent in another."""
    alerts = {
        m for name in RULE_TEMPLATES for m in re.findall(r"- alert: (\w+)", (ROLE / "templates" / name).read_text())
    }
    alerts |= {"Backend" + slo.capitalize() + "BudgetBurn" for slo in ("availability", "latency")}
    alerts.discard("Backend")
    firing, quiet = set(), set()
    for test_file in TESTS.glob("*_test.yml"):
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - firing == set()
    assert alerts - quiet == set()


def test_slo_buckets_are_the_apps() -> None:
    """prometheus_backend_duration_buckets must be the backend's histogram buckets (app/)."""
    source = APP_METRICS.read_text()
    match = re.search(r"DURATION_BUCKETS: Final = (\([^)]*\))", source)
    assert match, "DURATION_BUCKETS not found in the app"
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert [float(b) for b in defaults["prometheus_backend_duration_buckets"]] == list(ast.literal_eval(match.group(1)))


@pytest.mark.parametrize("name", list(INVENTORIES))
def test_rendered_rules_pass_their_unit_tests(render, tmp_path: Path, name: str) -> None:
    inventory, expected = INVENTORIES[name]
    installed, rules, config = render_rules(render, inventory)
    assert installed == expected
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if name == "loki-skipped":
        # No target where the component does not run: ScrapeTargetDown would fire forever.
        assert "loki" not in jobs
        assert "promtail" not in jobs
        # Nor a probe: probe_success 0 there would be an outage that is not one.
        assert "probe_grafana" not in jobs
        assert [static["labels"]["instance"] for static in jobs["probe_backend"]["static_configs"]] == ["app1"]
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for file in installed:
        (rules_dir / file).write_text(rules[file])
        result = promtool("check", "rules", str(rules_dir / file))
        assert result.returncode == 0, result.stdout + result.stderr
    shutil.copytree(TESTS, tmp_path / "tests")
    for test_file in sorted((tmp_path / "tests").glob("*_test.yml")):
        used = {
            line.split("../rules/")[1].strip() for line in test_file.read_text().splitlines() if "../rules/" in line
        }
        if not used <= set(installed):
            continue
        result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
        assert result.returncode == 0, f"{test_file.name}:\n{result.stdout}{result.stderr}"


def test_absent_components_get_no_alerts(render) -> None:
    _, _, config = render_rules(render, NO_BACKEND_NO_NODES)
    assert {job["job_name"] for job in config["scrape_configs"]} == {"prometheus", "grafana", "loki", "promtail"}


def test_alert_durations_and_slo_are_variables(render) -> None:
    _, rules, _ = render_rules(
        render,
        ALL_COMPONENTS,
        {
            "prometheus_alert_backend_down_for": "15s",
            "prometheus_alert_target_down_for": "20s",
            "prometheus_slo_availability_objective": 0.999,
            "prometheus_slo_latency_threshold": 1,
        },
    )
    alerts = {
        rule["alert"]: rule
        for file in ("backend.rules.yml", "targets.rules.yml", "backend-slo.rules.yml")
        for group in yaml.safe_load(rules[file])["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts["BackendDown"]["for"] == "15s"
    assert alerts["ScrapeTargetDown"]["for"] == "20s"
    assert "(14.4 * (1 - 0.999))" in alerts["BackendAvailabilityBudgetBurn"]["expr"]
    records = [r for g in yaml.safe_load(rules["backend-slo.rules.yml"])["groups"] for r in g["rules"] if "record" in r]
    assert 'le="1.0"' in next(r["expr"] for r in records if r["record"].endswith("slow_requests:ratio_rate5m"))


def test_rule_tests_catch_a_wrong_threshold(render, tmp_path: Path) -> None:
    """The unit tests are sensitive: a 90 % objective (10 % budget) keeps the tested burns from paging."""
    _, rules, _ = render_rules(render, ALL_COMPONENTS, {"prometheus_slo_availability_objective": 0.9})
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "backend-slo.rules.yml").write_text(rules["backend-slo.rules.yml"])
    shutil.copytree(TESTS, tmp_path / "tests")
    result = promtool("test", "rules", "backend_slo_rules_test.yml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "BackendAvailabilityBudgetBurn" in result.stdout + result.stderr


def test_a_host_where_a_component_is_skipped_gets_no_target() -> None:
    """Only the skipped host loses its target; the job stays for the hosts that run the component."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("prometheus_filters", ROLE / "filter_plugins" / "prometheus.py")
    assert spec and spec.loader
    filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters)
    hostvars = {
        "logs1": {"release_artifact_skipped": {"loki": True, "prometheus": False}},
        "logs2": {"release_artifact_skipped": {"loki": False}},
        "logs3": {},
    }
    jobs = filters.prometheus_scrape_jobs(
        [{"job": "loki", "group": "loki", "port": 3100, "port_var": "loki_http_listen_port"}],
        {"loki": ["logs1", "logs2", "logs3"], "all": ["logs1", "logs2", "logs3"]},
        hostvars,
        {"scheme": "http"},
    )
    (loki,) = [job for job in jobs if job["job_name"] == "loki"]
    assert [static["labels"]["instance"] for static in loki["static_configs"]] == ["logs2", "logs3"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("prometheus_slo_availability_objective=1.5", "prometheus_slo_availability_objective must be a ratio"),
        ("prometheus_slo_latency_objective=0", "prometheus_slo_latency_objective must be a ratio"),
        ("prometheus_slo_latency_threshold=0.3", "prometheus_slo_latency_threshold must be one of the backend's"),
        ("prometheus_alert_backend_down_for=soon", "prometheus_alert_backend_down_for must be a Prometheus duration"),
        ("prometheus_node_filesystem_free_percent_min=150", "prometheus_node_filesystem_free_percent_min must be"),
    ],
)
def test_bad_alerting_input_is_refused_naming_the_variable(tmp_path: Path, extra: str, message: str) -> None:
    result = run_preflight(tmp_path, "prometheus", "-e", extra)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
