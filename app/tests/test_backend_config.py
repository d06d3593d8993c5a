"""Configuration: defaults, parsing, and errors that name the offending variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clientforge_backend import create_app
from clientforge_backend.cli import APP_SPEC, GUNICORN_CONFIG, gunicorn_argv
from clientforge_backend.config import (
    ConfigError,
    Settings,
    load_server_settings,
    load_settings,
)


def test_defaults() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.environment == "development"
    assert settings.enable_test_error is False
    assert settings.log_dir == Path("logs")
    assert settings.log_level == "INFO"
    assert settings.log_max_bytes == 10_485_760
    assert settings.log_backup_count == 10
    assert settings.metrics_enabled is True
    assert settings.version is None


def test_env_parsing() -> None:
    settings = load_settings(
        {
            "BACKEND_ENVIRONMENT": "Production",
            "BACKEND_ENABLE_TEST_ERROR": "YES",
            "BACKEND_LOG_DIR": "/var/log/x",
            "BACKEND_LOG_LEVEL": "warning",
            "BACKEND_LOG_MAX_BYTES": "2048",
            "BACKEND_LOG_BACKUP_COUNT": "3",
            "BACKEND_METRICS_ENABLED": "off",
            "BACKEND_VERSION": "9.9.9",
            "UNRELATED": "x",
        }
    )
    assert settings.environment == "production"
    assert settings.enable_test_error is True
    assert settings.test_error_enabled is False  # production always wins
    assert settings.log_dir == Path("/var/log/x")
    assert settings.log_level == "WARNING"
    assert settings.log_max_bytes == 2048
    assert settings.log_backup_count == 3
    assert settings.metrics_enabled is False
    assert settings.version == "9.9.9"


def test_overrides_win_over_env() -> None:
    settings = load_settings({"BACKEND_ENVIRONMENT": "production"}, {"environment": "development"})
    assert settings.environment == "development"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BACKEND_ENVIRONMENT", "staging"),
        ("BACKEND_ENABLE_TEST_ERROR", "maybe"),
        ("BACKEND_LOG_DIR", "  "),
        ("BACKEND_LOG_LEVEL", "LOUD"),
        ("BACKEND_LOG_MAX_BYTES", "10MB"),
        ("BACKEND_LOG_MAX_BYTES", "12"),
        ("BACKEND_LOG_BACKUP_COUNT", "0"),
        ("BACKEND_LOG_BACKUP_COUNT", "-1"),
        ("BACKEND_METRICS_ENABLED", "2"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({variable: value})
    assert info.value.variable == variable
    assert variable in str(info.value)
    assert repr(value) in str(info.value)


def test_create_app_rejects_bad_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKEND_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="BACKEND_LOG_LEVEL"):
        create_app({"log_dir": str(tmp_path)})


def test_unknown_override_key() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, {"no_such_setting": 1})


def test_typed_override_values() -> None:
    settings = load_settings({}, {"log_max_bytes": 4096, "metrics_enabled": False})
    assert settings.log_max_bytes == 4096
    assert settings.metrics_enabled is False
    with pytest.raises(ConfigError, match="BACKEND_LOG_MAX_BYTES"):
        load_settings({}, {"log_max_bytes": True})


def test_server_settings_defaults_and_parsing() -> None:
    defaults = load_server_settings({})
    assert (defaults.bind, defaults.workers, defaults.threads) == ("0.0.0.0:3000", 2, 4)
    custom = load_server_settings(
        {"BACKEND_BIND": "[::1]:8080", "BACKEND_WORKERS": "3", "BACKEND_THREADS": "1"}
    )
    assert (custom.bind, custom.workers, custom.threads) == ("[::1]:8080", 3, 1)
    assert load_server_settings({"BACKEND_BIND": "unix:/run/x.sock"}).bind == "unix:/run/x.sock"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BACKEND_BIND", "nonsense"),
        ("BACKEND_BIND", "127.0.0.1:99999"),
        ("BACKEND_WORKERS", "0"),
        ("BACKEND_WORKERS", "two"),
        ("BACKEND_THREADS", "-4"),
        ("BACKEND_TIMEOUT", "0"),
        ("BACKEND_METRICS_DIR", ""),
    ],
)
def test_bad_server_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_server_settings({variable: value})


def _import_gunicorn_conf(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A subprocess: importing the module sets PROMETHEUS_MULTIPROC_DIR in os.environ.
    code = (
        "import os, clientforge_backend.gunicorn_conf as c; "
        "print(c.bind, c.workers, c.threads, c.worker_class, c.accesslog, "
        "c.control_socket_disable, os.environ.get('PROMETHEUS_MULTIPROC_DIR'))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gunicorn_conf_reads_env() -> None:
    result = _import_gunicorn_conf(
        {"BACKEND_BIND": "127.0.0.1:3999", "BACKEND_WORKERS": "3", "BACKEND_METRICS_DIR": "/x/m"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "['127.0.0.1:3999']",
        "3",
        "4",
        "gthread",
        "None",
        "True",
        "/x/m",
    ]


def test_gunicorn_conf_without_metrics_leaves_multiproc_unset() -> None:
    result = _import_gunicorn_conf({"BACKEND_METRICS_ENABLED": "false", "BACKEND_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[3] == "sync"
    assert result.stdout.split()[-1] == "None"


@pytest.mark.parametrize(
    ("variable", "value"), [("BACKEND_WORKERS", "zero"), ("BACKEND_ENVIRONMENT", "prod")]
)
def test_gunicorn_conf_rejects_bad_env(variable: str, value: str) -> None:
    result = _import_gunicorn_conf({variable: value})
    assert result.returncode != 0
    assert f"invalid {variable}=" in result.stderr


def test_cli_command_line() -> None:
    argv = gunicorn_argv(["--check-config"])
    assert argv[-4:] == ["-c", GUNICORN_CONFIG, "--check-config", APP_SPEC]
    assert GUNICORN_CONFIG == "python:clientforge_backend.gunicorn_conf"
    assert APP_SPEC == "clientforge_backend:create_app()"


def test_tls_files_must_be_set_together() -> None:
    both = load_server_settings(
        {"BACKEND_TLS_CERT_FILE": "/c.crt", "BACKEND_TLS_KEY_FILE": "/c.key"}
    )
    assert (str(both.tls_cert_file), str(both.tls_key_file)) == ("/c.crt", "/c.key")
    assert load_server_settings({}).tls_cert_file is None
    with pytest.raises(ConfigError, match="BACKEND_TLS_KEY_FILE"):
        load_server_settings({"BACKEND_TLS_CERT_FILE": "/c.crt"})
