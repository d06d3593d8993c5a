"""Loki ruler: the rendered rule file and ruler config, checked by the real lokitool and Loki.

The checks with the real binaries need ``lokitool-linux-amd64.zip`` / ``loki-linux-amd64.zip``
in ``MONITORING_ARTIFACTS_DIR``; without them those tests are SKIPPED, naming the file.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import Renderer
from test_loki_role import run_role

ARTIFACTS = Path(os.environ.get("MONITORING_ARTIFACTS_DIR", "/nonexistent"))


def inventory(group_vars: dict | None = None) -> dict:
    return {"all": {"vars": group_vars or {}, "children": {"loki": {"hosts": {"logs1": {}}}}}}


def rendered(render: Renderer, extra: dict | None = None) -> tuple[dict, str]:
    out = render("loki", ["loki.yml.j2", "backend-rules.yml.j2"], inventory(), extra)["logs1"]
    return yaml.safe_load(out["loki.yml"]), out["backend-rules.yml"]


def release_binary(name: str, tmp_path: Path) -> Path:
    asset = ARTIFACTS / f"{name}-linux-amd64.zip"
    if not asset.is_file():
        pytest.skip(
            f"SKIPPED: {asset.name} is not in MONITORING_ARTIFACTS_DIR ({ARTIFACTS}); the real {name} is not run"
        )
    with zipfile.ZipFile(asset) as archive:
        archive.extract(f"{name}-linux-amd64", tmp_path)
    binary = tmp_path / f"{name}-linux-amd64"
    binary.chmod(0o755)
    return binary


def test_error_alert_follows_the_promtail_labels_and_variables(render: Renderer) -> None:
    _, rules = rendered(render, {"loki_ruler_error_threshold": 25, "loki_ruler_error_window": "2m"})
    (group,) = yaml.safe_load(rules)["groups"]
    (rule,) = group["rules"]
    assert rule["alert"] == "BackendErrorLogs"
    assert " ".join(rule["expr"].split()) == 'sum by (host) (count_over_time({job="backend", level="ERROR"}[2m])) > 25'
    assert rule["for"] == "2m"
    assert rule["annotations"]["summary"] == "Backend on {{ $labels.host }} logs many errors"


def test_ruler_without_alertmanagers_evaluates_only(render: Renderer) -> None:
    config, _ = rendered(render)
    ruler = config["ruler"]
    assert ruler["storage"] == {"type": "local", "local": {"directory": "/etc/loki/rules"}}
    assert ruler["enable_api"] is True
    assert "alertmanager_url" not in ruler


def test_ruler_notifies_the_alertmanagers_over_tls_with_auth(render: Renderer) -> None:
    config, _ = rendered(
        render,
        {
            "loki_ruler_alertmanager_urls": ["https://am1:9093", "https://am2:9093"],
            "loki_ruler_alertmanager_tls_ca_file": "/etc/monitoring/ca.pem",
            "loki_ruler_alertmanager_basic_auth_username": "loki",
            "loki_ruler_alertmanager_basic_auth_password": "not-a-real-secret",
        },
    )
    ruler = config["ruler"]
    assert ruler["alertmanager_url"] == "https://am1:9093,https://am2:9093"
    assert ruler["enable_alertmanager_v2"] is True
    assert ruler["alertmanager_client"] == {
        "tls_ca_path": "/etc/monitoring/ca.pem",
        "basic_auth_username": "loki",
        "basic_auth_password": "not-a-real-secret",
    }


def test_ruler_off_leaves_no_ruler_section(render: Renderer) -> None:
    config, _ = rendered(render, {"loki_ruler_enabled": False})
    assert "ruler" not in config


def test_multi_tenant_ruler_needs_a_tenant(tmp_path: Path) -> None:
    result = run_role(tmp_path, "loki", {"loki_artifacts_dir": "", "loki_auth_enabled": True, "loki_ruler_tenant": ""})
    assert result.returncode != 0
    assert "loki_ruler_tenant must name the tenant" in " ".join(result.stdout.split())


def test_lokitool_accepts_the_rule_file_and_refuses_a_broken_one(render: Renderer, tmp_path: Path) -> None:
    lokitool = release_binary("lokitool", tmp_path)
    _, rules = rendered(render)
    good = tmp_path / "backend.yml"
    good.write_text(rules)
    result = subprocess.run([str(lokitool), "rules", "check", str(good)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(rules.replace("count_over_time(", "count_over_tim("))
    result = subprocess.run([str(lokitool), "rules", "check", str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "could not parse expression for alert 'BackendErrorLogs'" in result.stderr


def test_loki_accepts_the_ruler_config(render: Renderer, tmp_path: Path) -> None:
    loki = release_binary("loki", tmp_path)
    out = render("loki", ["loki.yml.j2"], inventory(), {"loki_ruler_alertmanager_urls": ["http://am1:9093"]})
    config = tmp_path / "loki.yml"
    config.write_text(out["logs1"]["loki.yml"])
    result = subprocess.run(
        [str(loki), "-verify-config", f"-config.file={config}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
