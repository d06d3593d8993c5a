"""docker_engine role: daemon.json rendered from the variables (valid JSON, the keys a monitoring
host needs, extra settings merged last) and the preflight refusals, each naming the variable.

Installing and starting the engine is not tested here (it needs a host with systemd).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Renderer, run_preflight

INVENTORY = {"all": {"hosts": {"h1": {}}}}
DOCKERD = shutil.which("dockerd")


def daemon_json(render: Renderer, extra: dict | None = None) -> dict:
    text = render("docker_engine", ["daemon.json.j2"], INVENTORY, extra)["h1"]["daemon.json"]
    return json.loads(text)


def test_default_daemon_json_rotates_logs_and_keeps_containers_running(render: Renderer) -> None:
    config = daemon_json(render)
    assert config == {
        "log-driver": "json-file",
        # dockerd refuses numbers among the log options: both are strings.
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "live-restore": True,
    }


def test_custom_daemon_json(render: Renderer) -> None:
    config = daemon_json(
        render,
        {
            "docker_engine_log_max_size": "100k",
            "docker_engine_log_max_file": 7,
            "docker_engine_live_restore": False,
            "docker_engine_registry_mirrors": ["https://mirror.example.org", "http://10.0.0.5:5000"],
            "docker_engine_insecure_registries": ["registry.lan:5000", "10.0.0.0/8"],
            "docker_engine_data_root": "/srv/docker",
            "docker_engine_daemon_extra": {
                "default-address-pools": [{"base": "172.30.0.0/16", "size": 24}],
                "debug": True,
            },
        },
    )
    assert config["log-opts"] == {"max-size": "100k", "max-file": "7"}
    assert config["live-restore"] is False
    assert config["registry-mirrors"] == ["https://mirror.example.org", "http://10.0.0.5:5000"]
    assert config["insecure-registries"] == ["registry.lan:5000", "10.0.0.0/8"]
    assert config["data-root"] == "/srv/docker"
    assert config["default-address-pools"] == [{"base": "172.30.0.0/16", "size": 24}]
    assert config["debug"] is True


def test_extra_settings_are_merged_last(render: Renderer) -> None:
    config = daemon_json(render, {"docker_engine_daemon_extra": {"live-restore": False, "log-driver": "local"}})
    assert config["live-restore"] is False
    assert config["log-driver"] == "local"


def test_dockerd_accepts_the_rendered_file(render: Renderer, tmp_path: Path) -> None:
    if DOCKERD is None:
        pytest.skip("SKIPPED: dockerd is not installed on this machine")
    help_text = subprocess.run([DOCKERD, "--help"], capture_output=True, text=True, check=False).stdout
    if "--validate" not in help_text:
        pytest.skip("SKIPPED: this dockerd has no --validate (Docker < 23)")
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(daemon_json(render, {"docker_engine_registry_mirrors": ["https://m.example"]})))
    result = subprocess.run(
        [DOCKERD, "--validate", f"--config-file={path}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"docker_engine_install_method": "snap"}, "docker_engine_install_method"),
        ({"docker_engine_log_max_size": "10MB"}, "docker_engine_log_max_size"),
        ({"docker_engine_log_max_size": "0m"}, "docker_engine_log_max_size"),
        ({"docker_engine_log_max_file": 0}, "docker_engine_log_max_file"),
        ({"docker_engine_registry_mirrors": ["mirror.example.org"]}, "docker_engine_registry_mirrors"),
        ({"docker_engine_registry_mirrors": ["ftp://mirror.example.org"]}, "docker_engine_registry_mirrors"),
        ({"docker_engine_insecure_registries": ["http://registry.lan:5000"]}, "docker_engine_insecure_registries"),
        ({"docker_engine_version": "latest"}, "docker_engine_version"),
        ({"docker_engine_version": "=27.5.1"}, "docker_engine_version"),
        ({"docker_engine_data_root": "srv/docker"}, "docker_engine_data_root"),
        (
            {"docker_engine_install_method": "repository", "__docker_engine_distribution": "Fedora"},
            "docker_engine_install_method",
        ),
        (
            {"docker_engine_install_method": "repository", "docker_engine_repository_mirror": "mirror.example"},
            "docker_engine_repository_url",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_variable(tmp_path: Path, extra: dict, variable: str) -> None:
    result = run_preflight(tmp_path, "docker_engine", "-e", json.dumps(extra))
    assert result.returncode != 0, result.stdout[-3000:]
    assert variable in result.stdout, result.stdout[-3000:]


def test_the_distribution_refusal_names_the_host_distribution(tmp_path: Path) -> None:
    extra = {"docker_engine_install_method": "repository", "__docker_engine_distribution": "Fedora"}
    result = run_preflight(tmp_path, "docker_engine", "-e", json.dumps(extra))
    assert result.returncode != 0
    assert '"Fedora"' in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "docker_engine_install_method": "repository",
            "__docker_engine_distribution": "Debian",
            "docker_engine_version": "5:27.5.1-1~debian.12~bookworm",
            "docker_engine_repository_mirror": "https://mirror.example.internal/docker",
            "docker_engine_log_max_size": "1g",
            "docker_engine_log_max_file": 5,
            "docker_engine_registry_mirrors": ["https://registry-cache.example.internal"],
            "docker_engine_insecure_registries": ["registry.lan:5000", "10.0.0.0/8"],
            "docker_engine_data_root": "/srv/docker",
        },
        {"docker_engine_version": "20.10.24+dfsg1-1+deb12u1"},
    ],
)
def test_good_input_passes_preflight(tmp_path: Path, extra: dict) -> None:
    result = run_preflight(tmp_path, "docker_engine", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:]
