"""The backend role refuses, before any host changes, exactly what the app would refuse at start:
its preflight runs the app's own parser (app/src/clientforge_backend/config.py) on the
environment file the role would write."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location(
    "backend_filters", REPO / "roles" / "backend" / "filter_plugins" / "backend.py"
)
assert spec and spec.loader
backend_filters = importlib.util.module_from_spec(spec)
sys.modules["backend_filters"] = backend_filters
spec.loader.exec_module(backend_filters)

APP = str(REPO / "app")
GOOD = """# Ansible managed
BACKEND_ENVIRONMENT=development
BACKEND_ENABLE_TEST_ERROR=false
BACKEND_LOG_DIR=/var/log/clientforge-backend
BACKEND_LOG_LEVEL=INFO
BACKEND_LOG_MAX_BYTES=10485760
BACKEND_LOG_BACKUP_COUNT=10
BACKEND_VERSION=preflight
BACKEND_BIND=0.0.0.0:3000
BACKEND_WORKERS=2
BACKEND_THREADS=4
BACKEND_METRICS_DIR=/run/clientforge-backend/metrics
"""


def problem(**changes: str) -> str:
    text = GOOD
    for key, value in changes.items():
        text = "\n".join(f"{key}={value}" if line.startswith(f"{key}=") else line for line in text.splitlines()) + "\n"
    return backend_filters.backend_settings_problem(text, APP)


def test_a_valid_environment_passes() -> None:
    assert problem() == ""


def test_what_the_app_refuses_is_refused_naming_the_role_variable() -> None:
    assert problem(BACKEND_WORKERS="0").startswith("backend_workers: the app refuses BACKEND_WORKERS='0'")
    assert problem(BACKEND_ENVIRONMENT="prod").startswith("backend_environment:")
    assert problem(BACKEND_BIND="not an address:3000").startswith("backend_bind_address/backend_port:")
    assert "must be <= 1000" in problem(BACKEND_LOG_BACKUP_COUNT="5000")


def test_without_the_app_source_there_is_nothing_to_check(tmp_path) -> None:  # noqa: ANN001
    assert backend_filters.backend_settings_problem(GOOD.replace("=2", "=0"), str(tmp_path)) == ""
