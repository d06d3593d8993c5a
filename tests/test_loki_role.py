"""Loki role: rendered configuration, unit sandbox, argument validation and check mode.

Loki itself cannot be downloaded here; these tests check what the role writes against the
Loki 3 configuration reference, and the role's own refusals. The Molecule scenario ``loki``
runs the real binary when the artifacts are available.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Renderer, offline_exposure, run_playbook, run_preflight

TEMPLATES = ["loki.yml.j2", "loki.service.j2"]

# A complete S3 setting; each case below breaks one thing. The keys must never be printed.
S3 = {
    "loki_storage_type": "s3",
    "loki_s3_endpoint": "s3.example:9000",
    "loki_s3_bucket": "loki",
    "loki_s3_region": "eu-west-1",
    "loki_s3_access_key_id": "AKIDNEVERPRINTED",
    "loki_s3_secret_access_key": "SECRETNEVERPRINTED",
}
HARDENED = {"loki_hardening": True, "loki_tls_cert_file": "/etc/tls/host.crt", "loki_tls_key_file": "/etc/tls/host.key"}


def inventory(loki_hosts: dict, group_vars: dict | None = None) -> dict:
    return {"all": {"vars": group_vars or {}, "children": {"loki": {"hosts": loki_hosts}}}}


def render_loki(render: Renderer, tmp_path: Path, hosts: dict, group_vars: dict | None = None, **extra) -> dict:
    out = render("loki", TEMPLATES, inventory(hosts, group_vars), extra or None)
    return {
        host: {"config": yaml.safe_load(files["loki.yml"]), "unit": files["loki.service"]}
        for host, files in out.items()
    }


def test_default_config_filesystem_single_tenant(render: Renderer, tmp_path: Path) -> None:
    cfg = render_loki(render, tmp_path, {"mon1": {}})["mon1"]["config"]
    assert cfg["auth_enabled"] is False
    assert cfg["server"]["http_listen_port"] == 3100
    assert "http_tls_config" not in cfg["server"]
    (period,) = cfg["schema_config"]["configs"]
    assert period["schema"] == "v13"
    assert period["store"] == "tsdb"
    assert period["object_store"] == "filesystem"
    assert period["index"] == {"prefix": "index_", "period": "24h"}
    assert cfg["common"]["storage"]["filesystem"]["chunks_directory"] == "/var/lib/loki/chunks"
    # Retention: compactor-based, and Loki 3 refuses retention without a delete request store.
    assert cfg["compactor"]["retention_enabled"] is True
    assert cfg["compactor"]["delete_request_store"] == "filesystem"
    assert cfg["compactor"]["working_directory"].startswith("/var/lib/loki/")
    assert cfg["limits_config"]["retention_period"] == "744h"
    # WAL on, under the data directory.
    assert cfg["ingester"]["wal"]["enabled"] is True
    assert cfg["ingester"]["wal"]["dir"] == "/var/lib/loki/wal"
    assert cfg["storage_config"]["tsdb_shipper"]["active_index_directory"].startswith("/var/lib/loki/")
    limits = cfg["limits_config"]
    assert limits["ingestion_rate_mb"] == 4
    assert limits["ingestion_burst_size_mb"] == 6
    assert limits["max_line_size"] == "256KB"
    assert limits["allow_structured_metadata"] is True
    assert cfg["analytics"]["reporting_enabled"] is False


def test_bound_to_one_address_keeps_internal_traffic_reachable(render: Renderer, tmp_path: Path) -> None:
    cfg = render_loki(
        render,
        tmp_path,
        {"mon1": {"loki_http_listen_address": "10.1.2.3", "loki_grpc_listen_address": "10.1.2.3"}},
    )["mon1"]["config"]
    assert cfg["server"]["http_listen_address"] == "10.1.2.3"
    assert cfg["server"]["grpc_listen_address"] == "10.1.2.3"
    # The ring and the query frontend must advertise an address the gRPC server listens on.
    assert cfg["common"]["instance_addr"] == "10.1.2.3"
    assert cfg["common"]["ring"]["instance_addr"] == "10.1.2.3"
    assert cfg["frontend"]["address"] == "10.1.2.3"


def test_default_grpc_stays_on_loopback(render: Renderer, tmp_path: Path) -> None:
    cfg = render_loki(render, tmp_path, {"mon1": {"loki_http_listen_address": "10.1.2.3"}})["mon1"]["config"]
    assert cfg["server"]["grpc_listen_address"] == "127.0.0.1"
    assert cfg["common"]["instance_addr"] == "127.0.0.1"
    assert cfg["frontend"]["address"] == "127.0.0.1"


def test_s3_multi_tenant_hardened(render: Renderer, tmp_path: Path) -> None:
    group_vars = {
        "monitoring_hardening": True,
        "monitoring_tls_cert_file": "/etc/monitoring/tls/host.crt",
        "monitoring_tls_key_file": "/etc/monitoring/tls/host.key",
        "loki_auth_enabled": True,
        "loki_storage_type": "s3",
        "loki_s3_endpoint": "minio.example:9000",
        "loki_s3_bucket": "loki-chunks",
        "loki_s3_region": "eu-west-1",
        "loki_s3_access_key_id": "AKIAEXAMPLE",
        "loki_s3_secret_access_key": 'se"cr:et #1',
        "loki_retention_period": "31d",
    }
    cfg = render_loki(render, tmp_path, {"mon1": {}}, group_vars)["mon1"]["config"]
    assert cfg["auth_enabled"] is True
    assert cfg["server"]["http_tls_config"] == {
        "cert_file": "/etc/monitoring/tls/host.crt",
        "key_file": "/etc/monitoring/tls/host.key",
    }
    s3 = cfg["common"]["storage"]["s3"]
    assert "filesystem" not in cfg["common"]["storage"]
    assert s3 == {
        "endpoint": "minio.example:9000",
        "bucketnames": "loki-chunks",
        "region": "eu-west-1",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": 'se"cr:et #1',
        "s3forcepathstyle": True,
        "insecure": False,
    }
    assert cfg["schema_config"]["configs"][0]["object_store"] == "s3"
    assert cfg["compactor"]["delete_request_store"] == "s3"
    assert cfg["limits_config"]["retention_period"] == "31d"


def test_s3_https_with_private_ca_and_path_style(render: Renderer, tmp_path: Path) -> None:
    group_vars = {**S3, "loki_s3_tls_ca_file": "/etc/ssl/private-ca/s3-ca.pem", "loki_s3_force_path_style": True}
    cfg = render_loki(render, tmp_path, {"mon1": {}}, group_vars)["mon1"]["config"]
    s3 = cfg["common"]["storage"]["s3"]
    # Loki 3.6: S3Config.HTTPConfig (yaml http_config) carries ca_file; https as insecure is false.
    assert s3["http_config"] == {"ca_file": "/etc/ssl/private-ca/s3-ca.pem"}
    assert s3["insecure"] is False
    assert s3["s3forcepathstyle"] is True
    assert s3["endpoint"] == "s3.example:9000"
    assert s3["bucketnames"] == "loki"
    assert cfg["schema_config"]["configs"][0]["object_store"] == "s3"


def test_s3_without_keys_uses_the_aws_credential_chain(render: Renderer, tmp_path: Path) -> None:
    """No keys at all (an IAM role on the host): no key fields, and the preflight accepts it."""
    group_vars = {**S3, "loki_s3_access_key_id": "", "loki_s3_secret_access_key": ""}
    s3 = render_loki(render, tmp_path, {"mon1": {}}, group_vars)["mon1"]["config"]["common"]["storage"]["s3"]
    assert "access_key_id" not in s3 and "secret_access_key" not in s3
    extra = {**group_vars, "loki_artifacts_dir": str(tmp_path), "loki_skip_missing_artifacts": True}
    result = run_preflight(tmp_path, "loki", "-e", json.dumps(extra))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_s3_plain_http_without_ca(render: Renderer, tmp_path: Path) -> None:
    group_vars = {**S3, "loki_s3_insecure": True, "loki_s3_force_path_style": False}
    s3 = render_loki(render, tmp_path, {"mon1": {}}, group_vars)["mon1"]["config"]["common"]["storage"]["s3"]
    assert s3["insecure"] is True
    assert s3["s3forcepathstyle"] is False
    assert "http_config" not in s3


def test_unit_is_sandboxed(render: Renderer, tmp_path: Path) -> None:
    unit = render_loki(render, tmp_path, {"mon1": {}})["mon1"]["unit"]
    assert "ExecStart=/usr/local/bin/loki -config.file=/etc/loki/loki.yml" in unit
    assert "User=loki" in unit
    assert "ReadWritePaths=/var/lib/loki" in unit
    for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "UMask=0027"):
        assert setting in unit.splitlines()
    assert offline_exposure(unit, "loki.service", tmp_path) <= 2.0


# --- the role on localhost, check mode ---------------------------------------------------------


def run_role(
    tmp_path: Path, role: str, extra: dict, inventory_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    inv = tmp_path / "inventory.yml"
    inv.write_text(
        inventory_text
        or yaml.safe_dump({"all": {"children": {role: {"hosts": {"localhost": {"ansible_connection": "local"}}}}}})
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": f"{role} in check mode",
                    "hosts": role,
                    "gather_facts": False,
                    "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                    "roles": [{"role": str(REPO / "roles" / role)}],
                }
            ]
        )
    )
    return run_playbook(playbook, inv, "--check", "-e", json.dumps(extra))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"loki_storage_type": "gcs"}, "loki_storage_type"),
        ({"loki_log_level": "verbose"}, "loki_log_level"),
        ({"loki_retention_period": "36h"}, "loki_retention_period must be a whole number of days"),
        ({"loki_version": "2.9.8"}, "expected a Loki 3 release"),
        ({"loki_storage_type": "s3", "loki_s3_endpoint": "s3.example"}, "loki_s3_bucket"),
        ({"loki_max_line_size": "lots"}, "loki_max_line_size must be a size"),
        ({"loki_hardening": True, "loki_tls_cert_file": "", "loki_tls_key_file": ""}, "loki_tls_cert_file"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, extra: dict, expected: str) -> None:
    result = run_role(tmp_path, "loki", {"loki_artifacts_dir": str(tmp_path), **extra})
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"loki_storage_type": "gcs"}, 'loki_storage_type = "gcs": expected filesystem (under loki_data_dir) or s3'),
        ({**S3, "loki_s3_endpoint": ""}, 'loki_s3_endpoint = "": expected the S3 store\'s host or host:port'),
        ({**S3, "loki_s3_endpoint": "https://s3.example"}, 'loki_s3_endpoint = "https://s3.example": expected'),
        ({**S3, "loki_s3_bucket": ""}, 'loki_s3_bucket = "": expected an S3 bucket name'),
        ({**S3, "loki_s3_bucket": "Loki_Logs"}, 'loki_s3_bucket = "Loki_Logs": expected an S3 bucket name'),
        ({**S3, "loki_s3_region": ""}, 'loki_s3_region = "": expected the store\'s region'),
        ({**S3, "loki_s3_access_key_id": ""}, "loki_s3_access_key_id is empty while the other S3 key is set"),
        ({**S3, "loki_s3_secret_access_key": ""}, "loki_s3_secret_access_key is empty while the other S3 key is set"),
        (
            {**S3, **HARDENED, "loki_s3_insecure": True},
            "loki_s3_insecure = true (plain http to s3.example:9000, the keys and logs in clear): refused with",
        ),
        ({**S3, "loki_s3_tls_ca_file": "ca.pem"}, 'loki_s3_tls_ca_file = "ca.pem" (loki_s3_insecure = false)'),
        (
            {**S3, "loki_s3_tls_ca_file": "/etc/ca.pem", "loki_s3_insecure": True},
            'loki_s3_tls_ca_file = "/etc/ca.pem" (loki_s3_insecure = true): expected',
        ),
    ],
    ids=[
        "type",
        "no-endpoint",
        "endpoint-scheme",
        "no-bucket",
        "bad-bucket",
        "no-region",
        "no-key-id",
        "no-secret",
        "insecure-hardened",
        "relative-ca",
        "ca-with-http",
    ],
)
def test_s3_preflight_refusals(tmp_path: Path, extra: dict, expected: str) -> None:
    result = run_preflight(tmp_path, "loki", "-v", "-e", json.dumps({"loki_artifacts_dir": str(tmp_path), **extra}))
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert expected in " ".join(out.split()), out[-3000:]
    assert "NEVERPRINTED" not in out


def test_s3_plain_http_allowed_under_hardening_when_explicit(tmp_path: Path) -> None:
    extra = {**S3, **HARDENED, "loki_s3_insecure": True, "loki_s3_allow_insecure": True}
    extra |= {"loki_artifacts_dir": str(tmp_path), "loki_skip_missing_artifacts": True}
    result = run_preflight(tmp_path, "loki", "-v", "-e", json.dumps(extra))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "NEVERPRINTED" not in out


def test_missing_artifact_names_file_place_and_remedy(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "SHA256SUMS").write_text("")
    result = run_role(tmp_path, "loki", {"loki_artifacts_dir": str(artifacts), "loki_skip_missing_artifacts": False})
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert f"loki 3.6.6: loki-linux-amd64.zip missing in {artifacts.resolve()} (loki_artifacts_dir" in out
    assert str(artifacts) in out
    assert "loki_artifacts_dir" in out
    assert "https://github.com/grafana/loki/releases/download/v3.6.6/loki-linux-amd64.zip" in out
    assert "and SHA256SUMS" not in out  # present: only the zip is named


def test_lab_skips_loki_with_a_warning_in_check_mode(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = run_role(tmp_path, "loki", {"loki_artifacts_dir": str(artifacts), "loki_skip_missing_artifacts": True})
    assert result.returncode == 0, result.stdout[-3000:]
    out = " ".join(result.stdout.split())
    assert "WARNING: loki 3.6.6 is SKIPPED on localhost: loki-linux-amd64.zip and SHA256SUMS missing in" in out
    # Nothing installed, configured or started for a skipped Loki.
    assert re.search(r"localhost\s*: ok=\d+\s+changed=0 ", out), out[-2000:]
