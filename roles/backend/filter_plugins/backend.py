"""Filters of the backend role: the app's own configuration parser, run on the controller."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

# Environment variable of the app -> the role variable(s) that set it.
ROLE_VARIABLES = {
    "BACKEND_ENVIRONMENT": "backend_environment",
    "BACKEND_ENABLE_TEST_ERROR": "backend_enable_test_error",
    "BACKEND_LOG_DIR": "backend_log_dir",
    "BACKEND_LOG_LEVEL": "backend_log_level",
    "BACKEND_LOG_MAX_BYTES": "backend_log_max_bytes",
    "BACKEND_LOG_BACKUP_COUNT": "backend_log_backup_count",
    "BACKEND_BIND": "backend_bind_address/backend_port",
    "BACKEND_WORKERS": "backend_workers",
    "BACKEND_THREADS": "backend_threads",
    "BACKEND_TLS_CERT_FILE": "backend_tls_cert_file",
    "BACKEND_TLS_KEY_FILE": "backend_tls_key_file",
}


@cache
def _app_config(source_dir: str) -> ModuleType | None:
    path = Path(source_dir) / "src" / "clientforge_backend" / "config.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_clientforge_backend_config", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def backend_settings_problem(env_file_text: str, source_dir: str) -> str:
    """What the app would refuse at start in this environment file, naming the role variable; "" if nothing.

    The app's own parser (app/src/clientforge_backend/config.py) is loaded from the source the
    role deploys, so the role refuses exactly what the app would refuse, before any host changes.
    """
    config = _app_config(str(source_dir))
    if config is None:
        return ""
    env: dict[str, str] = {}
    for line in str(env_file_text).splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    try:
        config.load_settings(env)
        config.load_server_settings(env)
    except config.ConfigError as exc:
        variable = ROLE_VARIABLES.get(exc.variable, exc.variable)
        return f"{variable}: the app refuses {exc.variable}={exc.value!r} ({exc.reason})"
    return ""


class FilterModule:
    """Filters of the backend role."""

    def filters(self) -> dict[str, Any]:
        return {"backend_settings_problem": backend_settings_problem}
