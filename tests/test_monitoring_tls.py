"""monitoring_tls role: the own CA and host certificates made on the controller (SANs, issuer,
chain, key usage, file modes), idempotence and renewal, check mode on a fresh CA directory,
operator-provided certificates and argument validation.

Every "host" of the fixture inventory uses the local connection and installs its files under
its own temporary directory, so nothing outside ``tmp_path`` changes (the key group is ``root``
or the invoking user's group, which already exist).
"""

from __future__ import annotations

import grp
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_playbook

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to inspect certificates")

HOSTS = {
    "mon1": {"monitoring_address": "mon1.internal"},
    "app1": {"monitoring_address": "10.0.0.7"},
    "app2": {"monitoring_address": "fd00::7"},
}


@pytest.fixture(autouse=True)
def private_fact_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep facts in memory: ansible.cfg caches them in .ansible/facts by host name, which the
    lab and these fixture inventories share (mon1, app1...)."""
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN", "memory")


def setup_run(tmp_path: Path, hosts: dict | None = None, group_vars: dict | None = None) -> tuple[Path, Path]:
    """Write a local-connection inventory and a play that applies the role to every host."""
    targets = tmp_path / "targets"
    all_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "monitoring_tls_ca_dir": str(tmp_path / "pki"),
        "monitoring_tls_dir": f"{targets}/{{{{ inventory_hostname }}}}",
        "monitoring_tls_ca_file": f"{targets}/{{{{ inventory_hostname }}}}/ca.crt",
        "monitoring_tls_cert_file": f"{targets}/{{{{ inventory_hostname }}}}/host.crt",
        "monitoring_tls_key_file": f"{targets}/{{{{ inventory_hostname }}}}/host.key",
        "monitoring_tls_group": grp.getgrgid(os.getegid()).gr_name,
        "monitoring_tls_system_trust": False,
        **(group_vars or {}),
    }
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"vars": all_vars, "hosts": hosts if hosts is not None else HOSTS}}))
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "TLS material",
                    "hosts": "all",
                    "gather_facts": False,
                    "roles": [{"role": str(REPO / "roles" / "monitoring_tls")}],
                }
            ]
        )
    )
    return play, inv


def run(
    tmp_path: Path, *args: str, hosts: dict | None = None, group_vars: dict | None = None
) -> subprocess.CompletedProcess[str]:
    play, inv = setup_run(tmp_path, hosts, group_vars)
    return run_playbook(play, inv, *args)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """``{host: {"ok": n, "changed": n, "failed": n}}`` from the PLAY RECAP."""
    hosts = {}
    for m in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", stdout, re.M):
        hosts[m[1]] = {"ok": int(m[2]), "changed": int(m[3]), "failed": int(m[4])}
    return hosts


def x509(path: Path, *flags: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", *flags], capture_output=True, text=True, check=True
    ).stdout


def test_own_ca_issues_host_certificates_that_verify(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    pki = tmp_path / "pki"
    ca = pki / "ca.crt"
    ca_text = x509(ca, "-text")
    assert "CA:TRUE" in ca_text
    assert "Certificate Sign, CRL Sign" in ca_text
    ca_subject = x509(ca, "-subject", "-nameopt", "RFC2253").split("=", 1)[1].strip()
    assert ca_subject == "CN=monitoring-stack CA,O=monitoring-stack"
    assert stat.S_IMODE((pki / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700

    loopback = "IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
    expected_sans = {
        "mon1": f"DNS:mon1, DNS:mon1.internal, DNS:localhost, {loopback}",
        "app1": f"DNS:app1, DNS:localhost, IP Address:10.0.0.7, {loopback}",
        "app2": f"DNS:app2, DNS:localhost, IP Address:FD00:0:0:0:0:0:0:7, {loopback}",
    }
    for host, sans in expected_sans.items():
        target = tmp_path / "targets" / host
        cert = target / "host.crt"
        text = x509(cert, "-text")
        assert f"Subject Alternative Name: \n                {sans}\n" in text, text
        assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
        assert "CA:FALSE" in text
        issuer = x509(cert, "-issuer", "-nameopt", "RFC2253").split("=", 1)[1].strip()
        assert issuer == ca_subject
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(target / "ca.crt"), "-purpose", "sslserver", str(cert)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # The installed key is the key of the installed certificate, readable by the group only.
        key = target / "host.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o640
        assert stat.S_IMODE(cert.stat().st_mode) == 0o644
        key_pub = subprocess.run(
            ["openssl", "pkey", "-in", str(key), "-pubout"], capture_output=True, text=True, check=True
        ).stdout
        assert key_pub == x509(cert, "-pubkey")
        assert (target / "ca.crt").read_bytes() == ca.read_bytes()
    # Keys never appear in the output.
    for host in HOSTS:
        key_body = (tmp_path / "targets" / host / "host.key").read_text().splitlines()[1]
        assert key_body not in result.stdout


def test_second_run_and_check_mode_change_nothing_and_renewal_reissues_only_expiring(tmp_path: Path) -> None:
    hosts = {h: HOSTS[h] for h in ("mon1", "app1")}
    first = run(tmp_path, hosts=hosts)
    assert first.returncode == 0, first.stdout[-4000:]
    serials = {h: x509(tmp_path / "pki" / "hosts" / f"{h}.crt", "-serial") for h in hosts}
    ca_serial = x509(tmp_path / "pki" / "ca.crt", "-serial")
    key_before = (tmp_path / "pki" / "hosts" / "mon1.key").read_bytes()

    second = run(tmp_path, hosts=hosts)
    assert second.returncode == 0, second.stdout[-4000:]
    assert all(r["changed"] == 0 for r in recap(second.stdout).values()), second.stdout[-3000:]
    assert {h: x509(tmp_path / "pki" / "hosts" / f"{h}.crt", "-serial") for h in hosts} == serials

    check = run(tmp_path, "--check", hosts=hosts)
    assert check.returncode == 0, check.stdout[-4000:]
    assert all(r["changed"] == 0 for r in recap(check.stdout).values()), check.stdout[-3000:]

    # Host certificates (365 days) now fall inside the renewal window, the CA (3650 days) does not.
    longer = {"monitoring_tls_renew_days": 400, "monitoring_tls_cert_valid_days": 500}
    renew = run(tmp_path, "-e", json.dumps(longer), hosts=hosts)
    assert renew.returncode == 0, renew.stdout[-4000:]
    for host, serial in serials.items():
        assert x509(tmp_path / "pki" / "hosts" / f"{host}.crt", "-serial") != serial
        installed = tmp_path / "targets" / host / "host.crt"
        assert installed.read_bytes() == (tmp_path / "pki" / "hosts" / f"{host}.crt").read_bytes()
    assert x509(tmp_path / "pki" / "ca.crt", "-serial") == ca_serial
    assert (tmp_path / "pki" / "hosts" / "mon1.key").read_bytes() == key_before  # renewal keeps the key


def test_check_mode_on_a_fresh_ca_directory_generates_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert not (tmp_path / "pki").exists()
    assert not (tmp_path / "targets").exists()
    assert "Check mode: the CA and the certificate of mon1 do not exist yet" in " ".join(result.stdout.split())


def make_provided(tmp_path: Path) -> dict[str, Path]:
    """A CA and a host certificate made with the openssl CLI, the way an operator might."""
    d = tmp_path / "provided"
    d.mkdir()
    cmds = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30"]
        + ["-subj", "/CN=Corp CA", "-keyout", "ca.key", "-out", "ca.crt"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        + ["-subj", "/CN=mon1", "-keyout", "mon1.key", "-out", "mon1.csr"],
        ["openssl", "x509", "-req", "-in", "mon1.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "10"]
        + ["-out", "mon1.crt"],
        ["openssl", "genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"],
    ]
    for cmd in cmds:
        subprocess.run(cmd, cwd=d, capture_output=True, check=True)
    return {name: d / name for name in ["ca.crt", "mon1.crt", "mon1.key", "other.key"]}


def test_provided_certificates_are_installed(tmp_path: Path) -> None:
    files = make_provided(tmp_path)
    host = {
        "mon1": {
            "monitoring_tls_cert_src": str(files["mon1.crt"]),
            "monitoring_tls_key_src": str(files["mon1.key"]),
            "monitoring_tls_ca_src": str(files["ca.crt"]),
        }
    }
    result = run(tmp_path, hosts=host, group_vars={"monitoring_tls_provided": True})
    assert result.returncode == 0, result.stdout[-4000:]
    target = tmp_path / "targets" / "mon1"
    assert (target / "host.crt").read_bytes() == files["mon1.crt"].read_bytes()
    assert (target / "host.key").read_bytes() == files["mon1.key"].read_bytes()
    assert (target / "ca.crt").read_bytes() == files["ca.crt"].read_bytes()
    assert not (tmp_path / "pki").exists()  # no own CA in provided mode


def test_provided_key_that_does_not_match_is_refused(tmp_path: Path) -> None:
    files = make_provided(tmp_path)
    host = {
        "mon1": {
            "monitoring_tls_cert_src": str(files["mon1.crt"]),
            "monitoring_tls_key_src": str(files["other.key"]),
            "monitoring_tls_ca_src": str(files["ca.crt"]),
        }
    }
    result = run(tmp_path, hosts=host, group_vars={"monitoring_tls_provided": True})
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "monitoring_tls_cert_src" in out
    assert "must match the key monitoring_tls_key_src" in out
    assert "(same public key: no)" in out
    assert not (tmp_path / "targets").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"monitoring_tls_key_type": "DSA"}, "monitoring_tls_key_type"),
        ({"monitoring_tls_renew_days": 400}, "must exceed monitoring_tls_renew_days (400"),
        ({"monitoring_tls_extra_sans": ["lb.example.com"]}, 'monitoring_tls_extra_sans entries look like "DNS:name"'),
        (
            {"monitoring_tls_ca_dir": str(REPO / "pki")},
            "monitoring_tls_ca_dir must be an absolute controller path outside",
        ),
        ({"monitoring_tls_ca_dir": "relative/pki"}, "monitoring_tls_ca_dir must be an absolute controller path"),
        ({"monitoring_tls_group": "Bad Group"}, "monitoring_tls_group a valid group name"),
        (
            {"monitoring_tls_system_trust": True, "monitoring_tls_system_trust_file": "/etc/ssl/ca.pem"},
            "monitoring_tls_system_trust_file",
        ),
        (
            {"monitoring_tls_provided": True},
            "monitoring_tls_cert_src, monitoring_tls_key_src and monitoring_tls_ca_src must all be set",
        ),
        (
            {"monitoring_tls_provided": True, "monitoring_tls_cert_src": "/nope.crt"}
            | {"monitoring_tls_key_src": "/nope.key", "monitoring_tls_ca_src": "/nope-ca.crt"},
            "Missing on the controller for mon1: /nope.crt, /nope.key, /nope-ca.crt",
        ),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, extra: dict, expected: str) -> None:
    # The playbook runs from tmp_path, so a CA directory in the repository must be refused by path.
    result = run(tmp_path, "-e", json.dumps(extra), hosts={"mon1": {}})
    assert result.returncode != 0
    assert expected in " ".join((result.stdout + result.stderr).split())
    assert not (tmp_path / "pki").exists()
    assert not (tmp_path / "targets").exists()
