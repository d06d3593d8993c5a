"""Lab tooling: the image is rebuilt exactly when its recipe changes, and the scenario runner
reports a scenario without its artifacts as SKIPPED (or FAILED when artifacts are required)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import REPO


def load(name: str):  # noqa: ANN201 - a module
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


lab_image = load("lab_image")
run_scenarios = load("run_scenarios")


def test_recipe_depends_on_the_extra_ca_and_the_recipe_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = lab_image.recipe_hash(b"")
    assert base == lab_image.recipe_hash(b""), "the recipe hash must be stable"
    assert lab_image.recipe_hash(b"-----BEGIN CERTIFICATE-----") != base
    lab_copy = tmp_path / "lab"
    lab_copy.mkdir()
    for name in ("packages.txt", "setup-image.sh", "Dockerfile"):
        (lab_copy / name).write_bytes((REPO / "lab" / name).read_bytes())
    monkeypatch.setattr(lab_image, "LAB_DIR", lab_copy)
    assert lab_image.recipe_hash(b"") == base
    (lab_copy / "packages.txt").write_text((REPO / "lab" / "packages.txt").read_text() + "nftables\n")
    assert lab_image.recipe_hash(b"") != base
    assert "nftables" in lab_image.packages() and all(not p.startswith("#") for p in lab_image.packages())


def test_image_packages_include_what_ansible_needs() -> None:
    assert {"systemd", "python3", "sudo", "python3-apt"} <= set(lab_image.packages())


def test_missing_artifacts_make_a_scenario_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITORING_ARTIFACTS_DIR", str(tmp_path))
    monkeypatch.delenv("MONITORING_REQUIRE_ARTIFACTS", raising=False)
    assert run_scenarios.missing_artifacts("loki") == ["loki-linux-amd64.zip", "lokitool-linux-amd64.zip", "SHA256SUMS"]
    outcome = run_scenarios.run("loki", tmp_path)
    assert outcome.result == "SKIPPED"
    assert "loki-linux-amd64.zip" in outcome.detail and str(tmp_path) in outcome.detail

    monkeypatch.setenv("MONITORING_REQUIRE_ARTIFACTS", "1")
    assert run_scenarios.run("loki", tmp_path).result == "FAILED"


def test_present_artifacts_are_not_reported_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_ARTIFACTS_DIR", str(tmp_path))
    for name in ("loki-linux-amd64.zip", "lokitool-linux-amd64.zip", "SHA256SUMS"):
        (tmp_path / name).write_bytes(b"x")
    assert run_scenarios.missing_artifacts("loki") == []


def test_scenarios_run_in_dependency_order() -> None:
    order = run_scenarios.discover()
    assert order[0] == "backend" and order[-1] == "stack"
    assert order.index("loki") < order.index("promtail")


def test_a_partial_verify_is_reported_skipped_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITORING_REQUIRE_ARTIFACTS", raising=False)
    report = tmp_path / "molecule-grafana.skipped"
    assert run_scenarios.passed_or_partial("grafana", 1.0, report).result == "PASSED"
    reason = "Loki datasource health: no Loki on mon1"
    report.write_text(f"SKIPPED: {reason}\nSKIPPED: {reason}\n")
    outcome = run_scenarios.passed_or_partial("grafana", 1.0, report)
    assert outcome.result == "SKIPPED"
    assert outcome.detail.count(reason) == 1
    monkeypatch.setenv("MONITORING_REQUIRE_ARTIFACTS", "1")
    assert run_scenarios.passed_or_partial("grafana", 1.0, report).result == "FAILED"


role_docs = load("role_docs")


def test_a_failed_run_names_its_step_task_host_and_message() -> None:
    bar = "  \x1b[2m\u2502\x1b[0m "
    log = "\n".join(
        [
            bar + "TASK [Show the refusal] *****",
            bar + "fatal: [app1]: FAILED! => {",
            bar + '    "msg": "expected refusal"',
            bar + "}",
            bar + "...ignoring",
            bar + "TASK [Every panel has data] *****",
            bar + "fatal: [mon]: FAILED! => changed=false",
            bar + "  msg: 'Panels without data: [Request rate]'",
            bar + "",
            "INFO     \x1b[32mstack\x1b[0m \u279c \x1b[33mverify\x1b[0m: \x1b[31mExecuted: Failed\x1b[0m",
        ]
    )
    summary = run_scenarios.failure_summary(log)
    assert summary == (
        "in verify: TASK [Every panel has data] fatal: [mon]: FAILED! => changed=false"
        " msg: 'Panels without data: [Request rate]'"
    )
    assert run_scenarios.failure_summary("no failure here") == ""


def test_readme_tables_defaults_and_argument_specs_agree() -> None:
    problems = [
        line
        for role in sorted((REPO / "roles").glob("*/meta/argument_specs.yml"))
        for line in role_docs.check_role(role.parent.parent, write=False)
    ]
    assert problems == []


def test_the_docs_check_notices_a_drift(tmp_path: Path) -> None:
    role = tmp_path / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "defaults" / "main.yml").write_text(
        "---\n# Port of the demo.\ndemo_port: 80\n# Undeclared.\ndemo_extra: 1\n"
    )
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      demo_port: {type: int, default: 8080}\n"
    )
    (role / "README.md").write_text(f"# demo\n\n{role_docs.BEGIN}\n| stale |\n{role_docs.END}\n")
    problems = role_docs.check_role(role, write=False)
    assert any("demo_extra is in defaults/main.yml but no entry point" in p for p in problems)
    assert any("demo_port defaults to 80 in defaults/main.yml but to 8080" in p for p in problems)
    assert any("variable table is out of date" in p for p in problems)
    role_docs.check_role(role, write=True)
    assert "| `demo_port` | `80` | Port of the demo. |" in (role / "README.md").read_text()


lab_ports = load("lab_ports")


def free_except(*taken: tuple[str, int]):  # noqa: ANN201 - a predicate
    return lambda ip, port: (ip, port) not in taken


def test_free_loopback_ports_are_kept() -> None:
    requested = {"lab-mon1": ["127.0.0.1:9090:9090", "127.0.0.1:3100:3100"], "lab-app2": []}
    assert lab_ports.resolve(requested, {"lab-mon1": None, "lab-app2": None}, free_except()) == requested


def test_a_taken_port_is_left_to_docker() -> None:
    requested = {"lab-mon1": ["127.0.0.1:9090:9090", "127.0.0.1:3005:3005"]}
    resolved = lab_ports.resolve(requested, {}, free_except(("127.0.0.1", 9090)))
    assert resolved == {"lab-mon1": ["127.0.0.1::9090", "127.0.0.1:3005:3005"]}


def test_two_hosts_of_one_lab_never_ask_for_the_same_port() -> None:
    requested = {"lab-app1": ["127.0.0.1:3000:3000"], "lab-app2": ["127.0.0.1:3000:3000"]}
    resolved = lab_ports.resolve(requested, {}, free_except())
    assert resolved == {"lab-app1": ["127.0.0.1:3000:3000"], "lab-app2": ["127.0.0.1::3000"]}


def test_an_existing_container_keeps_its_bindings_so_a_rerun_changes_nothing() -> None:
    requested = {"lab-mon1": ["127.0.0.1:9090:9090", "127.0.0.1:3100:3100", "127.0.0.1:3005:3005"]}
    existing = {
        "lab-mon1": {
            "9090/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],  # Docker chose it at creation
            "3100/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3100"}],
        }
    }
    # 3100 is "taken" by the container itself; 3005 was not published before: it is resolved anew.
    resolved = lab_ports.resolve(requested, existing, free_except(("127.0.0.1", 3100), ("127.0.0.1", 3005)))
    assert resolved == {"lab-mon1": ["127.0.0.1::9090", "127.0.0.1:3100:3100", "127.0.0.1::3005"]}


def test_port_specs_round_trip() -> None:
    for spec in ("127.0.0.1:9090:9090", "127.0.0.1::3000", "8080:80", "53/udp", "[::1]:9090:9090"):
        assert str(lab_ports.PortSpec.parse(spec)) == spec
    assert lab_ports.PortSpec.parse("53/udp").key == "53/udp"
    assert lab_ports.PortSpec.parse("127.0.0.1::3000").key == "3000/tcp"


def test_ports_published_by_docker_count_as_taken() -> None:
    published = lab_ports.docker_published(
        ["127.0.0.1:9090->9090/tcp, 127.0.0.1:3100->3100/tcp", "", "0.0.0.0:3005->3005/tcp, :::3005->3005/tcp"]
    )
    assert ("127.0.0.1", 9090) in published and ("0.0.0.0", 3005) in published and ("::", 3005) in published
    assert not lab_ports.port_is_free("127.0.0.1", 9090, published)
    assert not lab_ports.port_is_free("127.0.0.1", 3005, published), "a wildcard binding holds every address"


def test_a_port_bound_by_another_program_is_taken() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not lab_ports.port_is_free("127.0.0.1", port, set())
    assert lab_ports.port_is_free("127.0.0.1", port, set())


def test_lab_names_are_unique_per_checkout_and_the_same_for_make_and_the_inventory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib
    import subprocess

    from conftest import ansible_env

    for name in ("LAB_PREFIX", "LAB_NETWORK", "MOLECULE_RUN_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    checkout_id = hashlib.sha1(str(REPO).encode()).hexdigest()[:6]
    printed = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval=print-%: ; @echo $($*)",
            "print-LAB_PREFIX",
            "print-LAB_NETWORK",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert printed == [f"cf-lab-{checkout_id}-", f"cf-lab-{checkout_id}"]
    env = {k: v for k, v in ansible_env().items() if k not in ("LAB_PREFIX", "LAB_NETWORK")}
    inventory = subprocess.run(
        [
            "ansible",
            "-i",
            "inventory/lab",
            "mon1",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ ansible_host ~ ',' ~ lab_network }}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert f"cf-lab-{checkout_id}-mon1,cf-lab-{checkout_id}" in inventory
    env["LAB_PREFIX"] = "other-"
    overridden = subprocess.run(
        ["ansible-inventory", "-i", "inventory/lab", "--host", "app1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert '"ansible_host": "other-app1"' in overridden


lab_image_rm = load("lab_image_rm")


def test_the_image_is_not_removed_while_a_container_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    calls: list[list[str]] = []
    users = {"names": "cf-lab-0259a9-mon1\ncfm-261c21-stack-app1\n"}

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        stdout = users["names"] if cmd[:2] == ["docker", "ps"] else ""
        return subprocess.CompletedProcess(cmd, 0, stdout=stdout, stderr="")

    monkeypatch.setattr(lab_image_rm.subprocess, "run", fake_run)
    monkeypatch.setattr(lab_image_rm.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(SystemExit, match="cf-lab-0259a9-mon1, cfm-261c21-stack-app1"):
        lab_image_rm.main(["--image", "lab/throwaway:tag"])
    assert ["docker", "image", "rm", "lab/throwaway:tag"] not in calls
    assert ["docker", "ps", "--all", "--filter", "ancestor=lab/throwaway:tag", "--format", "{{ .Names }}"] in calls

    users["names"] = ""
    assert lab_image_rm.main(["--image", "lab/throwaway:tag"]) == 0
    assert calls[-1] == ["docker", "image", "rm", "lab/throwaway:tag"]
