"""Promtail role: rendered configuration (client URLs from the inventory, the backend pipeline),
unit sandbox, argument validation and check mode.

Promtail cannot be downloaded here; the Molecule scenario ``promtail`` ships a real line to a
real Loki when the artifacts are available.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Renderer, offline_exposure, run_playbook

TEMPLATES = ["promtail.yml.j2", "promtail.service.j2"]
HARDENED = {
    "monitoring_hardening": True,
    "monitoring_tls_ca_file": "/etc/monitoring/tls/ca.crt",
    "monitoring_tls_cert_file": "/etc/monitoring/tls/host.crt",
    "monitoring_tls_key_file": "/etc/monitoring/tls/host.key",
}


def inventory(group_vars: dict | None = None, app_vars: dict | None = None) -> dict:
    return {
        "all": {
            "vars": group_vars or {},
            "children": {
                "loki": {"hosts": {"mon1": {"monitoring_address": "mon1.internal"}, "mon2": {}}},
                "backend": {"hosts": {"app1": app_vars or {}, "app2": {}}},
                "promtail": {"children": {"backend": {}}},
            },
        }
    }


def render_promtail(
    render: Renderer, tmp_path: Path, group_vars: dict | None = None, app_vars: dict | None = None
) -> dict:
    out = render("promtail", TEMPLATES, inventory(group_vars, app_vars), {"render_hosts": "promtail"})
    return {
        host: {"config": yaml.safe_load(f["promtail.yml"]), "unit": f["promtail.service"]} for host, f in out.items()
    }


def backend_job(cfg: dict) -> dict:
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "backend"]
    return job


def test_clients_come_from_the_loki_group(render: Renderer, tmp_path: Path) -> None:
    cfg = render_promtail(render, tmp_path)["app1"]["config"]
    assert [c["url"] for c in cfg["clients"]] == [
        "http://mon1.internal:3100/loki/api/v1/push",
        "http://mon2:3100/loki/api/v1/push",
    ]
    assert all("tenant_id" not in c and "tls_config" not in c for c in cfg["clients"])
    assert cfg["server"]["http_listen_port"] == 9080
    assert "http_tls_config" not in cfg["server"]


def test_hardened_multi_tenant_clients(render: Renderer, tmp_path: Path) -> None:
    cfg = render_promtail(render, tmp_path, {**HARDENED, "loki_auth_enabled": True})["app1"]["config"]
    for client in cfg["clients"]:
        assert client["url"].startswith("https://")
        assert client["tenant_id"] == "clientforge"
        assert client["tls_config"] == {"ca_file": "/etc/monitoring/tls/ca.crt"}
    assert cfg["server"]["http_tls_config"]["cert_file"] == "/etc/monitoring/tls/host.crt"


def test_backend_job_labels_and_pipeline(render: Renderer, tmp_path: Path) -> None:
    rendered = render_promtail(render, tmp_path)
    for host in ("app1", "app2"):
        job = backend_job(rendered[host]["config"])
        paths = sorted(t["labels"]["__path__"] for t in job["static_configs"])
        assert paths == ["/var/log/clientforge-backend/combined.log", "/var/log/clientforge-backend/error.log"]
        for target in job["static_configs"]:
            assert target["labels"]["job"] == "backend"
            assert target["labels"]["host"] == host
    stages = backend_job(rendered["app1"]["config"])["pipeline_stages"]
    assert [next(iter(s)) for s in stages] == ["json", "timestamp", "labels", "structured_metadata"]
    json_stage, timestamp, labels, metadata = (next(iter(s.values())) for s in stages)
    assert {"timestamp", "level", "tenant", "request_id"} <= set(json_stage["expressions"])
    assert timestamp == {"source": "timestamp", "format": "RFC3339Nano"}
    # Only the level becomes a label; tenant and request id stay out of the index.
    assert list(labels) == ["level"]
    assert set(metadata) == {"tenant", "request_id"}


def test_positions_persisted_under_var_lib(render: Renderer, tmp_path: Path) -> None:
    cfg = render_promtail(render, tmp_path)["app1"]["config"]
    assert cfg["positions"]["filename"] == "/var/lib/promtail/positions.yaml"
    unit = render_promtail(render, tmp_path)["app1"]["unit"]
    assert "ReadWritePaths=/var/lib/promtail" in unit


def test_log_dir_follows_backend_log_dir(render: Renderer, tmp_path: Path) -> None:
    cfg = render_promtail(render, tmp_path, app_vars={"backend_log_dir": "/srv/backend/logs"})["app1"]["config"]
    paths = sorted(t["labels"]["__path__"] for t in backend_job(cfg)["static_configs"])
    assert paths == ["/srv/backend/logs/combined.log", "/srv/backend/logs/error.log"]


def test_optional_jobs(render: Renderer, tmp_path: Path) -> None:
    default = render_promtail(render, tmp_path)["app1"]["config"]
    assert [j["job_name"] for j in default["scrape_configs"]] == ["backend"]
    enabled = render_promtail(render, tmp_path, {"promtail_journal_enabled": True, "promtail_docker_enabled": True})
    jobs = {j["job_name"]: j for j in enabled["app1"]["config"]["scrape_configs"]}
    assert jobs["journal"]["journal"]["labels"] == {"job": "systemd-journal", "host": "app1"}
    assert jobs["docker"]["docker_sd_configs"][0]["host"] == "unix:///var/run/docker.sock"


def test_unit_is_sandboxed_and_reloads(render: Renderer, tmp_path: Path) -> None:
    unit = render_promtail(render, tmp_path)["app1"]["unit"]
    lines = unit.splitlines()
    assert "User=promtail" in lines
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines
    for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "UMask=0027"):
        assert setting in lines
    assert offline_exposure(unit, "promtail.service", tmp_path) <= 2.0


# --- the role on localhost, check mode ---------------------------------------------------------


def run_role(tmp_path: Path, extra: dict, with_loki: bool = True) -> subprocess.CompletedProcess[str]:
    groups: dict = {"promtail": {"hosts": {"localhost": {"ansible_connection": "local"}}}}
    if with_loki:
        groups["loki"] = {"hosts": {"mon1": {}}}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": groups}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "promtail in check mode",
                    "hosts": "promtail",
                    "gather_facts": False,
                    "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                    "roles": [{"role": str(REPO / "roles" / "promtail")}],
                }
            ]
        )
    )
    return run_playbook(playbook, inv, "--check", "-e", json.dumps({"promtail_artifacts_dir": str(tmp_path), **extra}))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"promtail_install_method": "docker"}, "promtail_install_method"),
        ({"promtail_backend_log_files": "error.log"}, "promtail_backend_log_files"),
        ({"promtail_docker_enabled": True, "monitoring_hardening": True, **HARDENED}, "promtail_docker_enabled gives"),
        ({"promtail_hardening": True, "promtail_tls_ca_file": ""}, "promtail_tls_ca_file"),
        (
            {"promtail_loki_auth_enabled": True, "promtail_tenant_id": "a b"},
            "promtail_tenant_id must be a Loki tenant ID",
        ),
        ({"promtail_backend_log_dir": "logs"}, "promtail_backend_log_dir must be an absolute path"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, extra: dict, expected: str) -> None:
    result = run_role(tmp_path, extra)
    assert result.returncode != 0
    assert expected in " ".join((result.stdout + result.stderr).split())


def test_no_loki_hosts_is_refused(tmp_path: Path) -> None:
    result = run_role(tmp_path, {}, with_loki=False)
    assert result.returncode != 0
    assert 'put the Loki hosts in the inventory group "loki" (promtail_loki_group)' in " ".join(result.stdout.split())


def test_missing_artifact_names_file_place_and_remedy(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = run_role(tmp_path, {"promtail_artifacts_dir": str(artifacts), "promtail_skip_missing_artifacts": False})
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert f"promtail 3.6.6: promtail-linux-amd64.zip and SHA256SUMS missing in {artifacts.resolve()}" in out
    assert str(artifacts) in out
    assert "promtail_artifacts_dir" in out
    assert "https://github.com/grafana/loki/releases/download/v3.6.6/promtail-linux-amd64.zip" in out


def test_lab_skips_promtail_with_a_warning_in_check_mode(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = run_role(tmp_path, {"promtail_artifacts_dir": str(artifacts), "promtail_skip_missing_artifacts": True})
    assert result.returncode == 0, result.stdout[-3000:]
    out = " ".join(result.stdout.split())
    assert "WARNING: promtail 3.6.6 is SKIPPED on localhost: promtail-linux-amd64.zip and SHA256SUMS missing in" in out
