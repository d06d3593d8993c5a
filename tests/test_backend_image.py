"""app/Dockerfile: the backend's production image keeps the properties the container mode relies
on, and serves the same gunicorn settings as the systemd unit of roles/backend.

Static checks always run. One build-and-run test runs only with ``MONITORING_IMAGE_TESTS=1``
and a docker daemon that answers; the base image comes from ``MONITORING_IMAGE_BASE`` (default
``monitoring-lab/debian12:bookworm``, the lab's local Debian 12 image: Docker Hub is out of reach
here), the constraints from requirements.lock.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
import uuid

import pytest
import yaml
from conftest import REPO

APP = REPO / "app"
DOCKERFILE = APP / "Dockerfile"
DEFAULT_BASE = "monitoring-lab/debian12:bookworm"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):  # comments are dropped, even inside continuations
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, rest = pending.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def args_of(stage: int | None = None) -> dict[str, str]:
    """ARG defaults (global ones and, with ``stage``, those of the stage with that index)."""
    values: dict[str, str] = {}
    current = -1
    for keyword, rest in instructions():
        if keyword == "FROM":
            current += 1
        elif keyword == "ARG" and current in (-1, stage):
            name, _, default = rest.partition("=")
            values[name] = default.strip('"')
    return values


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stages()[-1]:
        if keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def role_defaults() -> dict[str, object]:
    return yaml.safe_load((REPO / "roles" / "backend" / "defaults" / "main.yml").read_text())


def test_base_image_is_a_build_arg_used_by_every_stage() -> None:
    assert args_of()["BASE_IMAGE"] == "python:3.11-slim-bookworm"
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert froms and all(rest.startswith("${BASE_IMAGE}") for rest in froms), froms


def test_multi_stage_runtime_has_no_compiler_and_installs_offline() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    runtime = all_stages[-1]
    assert any(k == "COPY" and rest.startswith("--from=") for k, rest in runtime)
    runs = " ".join(rest for k, rest in runtime if k == "RUN")
    assert "--no-index" in runs
    assert not re.search(r"apt-get install|gcc|build-essential|python3-dev", runs)


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for k, rest in stages()[-1] if k == "USER"]
    assert users, "the runtime stage sets no USER"
    stage_args = args_of(len(stages()) - 1)
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: stage_args[m.group(1)], users[-1])
    uid, _, gid = resolved.partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0), users[-1]


def test_port_healthcheck_stop_signal_volume_and_read_only_root() -> None:
    runtime = stages()[-1]
    keywords = {k for k, _ in runtime}
    assert ("EXPOSE", "3000") in runtime
    health = [rest for k, rest in runtime if k == "HEALTHCHECK"]
    assert health and "/metrics" in health[0] and "urllib" in health[0]
    assert ("STOPSIGNAL", "SIGTERM") in runtime
    assert "WORKDIR" in keywords
    volumes = [rest for k, rest in runtime if k == "VOLUME"]
    assert volumes and role_defaults()["backend_log_dir"] in volumes[0]
    entry = " ".join(rest for k, rest in runtime if k in ("ENTRYPOINT", "CMD"))
    assert '"--worker-tmp-dir", "/dev/shm"' in entry
    env = runtime_env()
    assert env["TMPDIR"].startswith("/dev/shm")
    assert env["BACKEND_METRICS_DIR"].startswith("/dev/shm/")


def test_gunicorn_settings_equal_the_systemd_defaults() -> None:
    defaults = role_defaults()
    env = runtime_env()
    assert env["BACKEND_BIND"] == f"{defaults['backend_bind_address']}:{defaults['backend_port']}"
    for variable, role_var in {
        "BACKEND_WORKERS": "backend_workers",
        "BACKEND_THREADS": "backend_threads",
        "BACKEND_LOG_DIR": "backend_log_dir",
        "BACKEND_LOG_LEVEL": "backend_log_level",
        "BACKEND_LOG_MAX_BYTES": "backend_log_max_bytes",
        "BACKEND_LOG_BACKUP_COUNT": "backend_log_backup_count",
        "BACKEND_ENVIRONMENT": "backend_environment",
        "BACKEND_ENABLE_TEST_ERROR": "backend_enable_test_error",
    }.items():
        assert env[variable] == str(defaults[role_var]).lower() or env[variable] == str(defaults[role_var]), variable
    # The unit sets no timeouts: gunicorn runs with the app's own defaults, so must the image.
    unit = (REPO / "roles" / "backend" / "templates" / "clientforge-backend.service.j2").read_text()
    env_file = (REPO / "roles" / "backend" / "templates" / "backend.env.j2").read_text()
    assert "-c python:clientforge_backend.gunicorn_conf" in unit
    config = (APP / "src" / "clientforge_backend" / "config.py").read_text()
    for name in ("timeout", "graceful_timeout", "keepalive"):
        assert f"BACKEND_{name.upper()}" not in env_file
        default = re.search(rf"^\s+{name}: int = (\d+)$", config, re.M)
        assert default, name
        assert env[f"BACKEND_{name.upper()}"] == default.group(1), name


def test_oci_labels_and_no_secrets() -> None:
    text = DOCKERFILE.read_text()
    for label in ("title", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{label}=" in text, label
    version = tomllib.loads((APP / "pyproject.toml").read_text())["project"]["version"]
    assert args_of(len(stages()) - 1)["VERSION"] == version
    assert 'org.opencontainers.image.version="${VERSION}"' in text
    env = runtime_env()
    assert not [n for n in env if re.search(r"PASSWORD|SECRET|TOKEN|KEY", n)], env
    assert not any(k == "ADD" for k, _ in instructions())


def test_dockerignore_keeps_tests_caches_and_venvs_out() -> None:
    ignore = (APP / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # allow-list: only what the image needs is sent
    for kept in ("!pyproject.toml", "!README.md", "!src/"):
        assert kept in ignore
    for dropped in ("tests/", ".venv/", ".ruff_cache/"):
        assert dropped in ignore


# --- build and run (opt-in) ------------------------------------------------------------------


def _docker_answers() -> str | None:
    if not shutil.which("docker"):
        return "no docker client on PATH"
    probe = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return None if probe.returncode == 0 else f"docker daemon does not answer: {probe.stderr[-200:]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _counter(metrics: str, route: str) -> float:
    pattern = rf'^http_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} (\S+)$'
    found = re.search(pattern, metrics, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.skipif(
    os.environ.get("MONITORING_IMAGE_TESTS") != "1",
    reason="image build-and-run test: set MONITORING_IMAGE_TESTS=1 (and MONITORING_IMAGE_BASE)",
)
def test_image_builds_and_runs_read_only_as_non_root() -> None:
    problem = _docker_answers()
    if problem:
        pytest.skip(problem)
    base = os.environ.get("MONITORING_IMAGE_BASE", DEFAULT_BASE)
    tag = f"h12-clientforge-backend-test:{uuid.uuid4().hex[:8]}"
    name = f"h12-backend-test-{uuid.uuid4().hex[:8]}"
    lock = (REPO / "requirements.lock").read_text()
    constraints = " ".join(re.findall(r"^[A-Za-z0-9._-]+==\S+", lock, re.M))
    env = dict(os.environ, DOCKER_BUILDKIT=os.environ.get("DOCKER_BUILDKIT", "0"))
    build = subprocess.run(
        ["nice", "docker", "build", "-t", tag, "--build-arg", f"BASE_IMAGE={base}"]
        + ["--build-arg", f"CONSTRAINTS={constraints}", str(APP)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    port = _free_port()
    try:
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL"]
            + ["--security-opt", "no-new-privileges", "-p", f"127.0.0.1:{port}:3000", tag],
            check=True,
            capture_output=True,
            timeout=60,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"{url}/api/v1/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                    pytest.fail(f"no answer on {url}: {logs.stdout[-2000:]}{logs.stderr[-2000:]}")
                time.sleep(1)
        assert status == 200 and json.loads(body)["status"] == "ok"
        before = _counter(_get(f"{url}/metrics")[1], "/api/v1/contacts")
        for _ in range(7):
            assert _get(f"{url}/api/v1/contacts")[0] == 200
        assert _counter(_get(f"{url}/metrics")[1], "/api/v1/contacts") == before + 7

        top = subprocess.run(
            ["docker", "top", name, "-eo", "pid,uid,args"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[1:]
        assert top and all(line.split()[1] == "10001" for line in top), top
        log = subprocess.run(
            ["docker", "exec", name, "cat", "/var/log/clientforge-backend/combined.log"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert sum('"route": "/api/v1/contacts"' in line for line in log.splitlines()) == 7

        deadline = time.monotonic() + 90  # first probe after --interval (15 s)
        health = ""
        while time.monotonic() < deadline and health != "healthy":
            time.sleep(3)
            health = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        assert health == "healthy"

        subprocess.run(["docker", "stop", "-t", "35", name], check=True, capture_output=True)
        exit_code = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert exit_code == "0", "gunicorn did not stop gracefully on SIGTERM"
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
