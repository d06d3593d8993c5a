"""Configuration from ``BACKEND_*`` environment variables.

This module deliberately imports nothing heavy (no Flask, no prometheus_client): the gunicorn
config module imports it in the master process *before* ``PROMETHEUS_MULTIPROC_DIR`` is set,
and prometheus_client decides between single- and multi-process mode when it is first imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final, TypeVar

ENV_PREFIX: Final = "BACKEND_"
ENVIRONMENTS: Final = ("development", "production")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# On tmpfs: the files are mmap'd and written on every request; disk writeback would stall them.
DEFAULT_METRICS_DIR: Final = "/dev/shm/clientforge-backend-metrics"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_BIND_RE: Final = re.compile(r"^(unix:/.+|(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):\d{1,5})$")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the environment variable."""

    def __init__(self, variable: str, value: object, reason: str) -> None:
        self.variable = variable
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {variable}={value!r}: {reason}")


def parse_bool(variable: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise ConfigError(variable, value, "expected a boolean (true/false, 1/0, yes/no, on/off)")


def parse_int(variable: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(variable, value, "expected an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise ConfigError(variable, value, "expected an integer") from None
    else:
        raise ConfigError(variable, value, "expected an integer")
    if number < minimum:
        raise ConfigError(variable, value, f"must be >= {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(variable, value, f"must be <= {maximum}")
    return number


def parse_choice(variable: str, value: object, choices: tuple[str, ...], *, upper: bool) -> str:
    if not isinstance(value, str):
        raise ConfigError(variable, value, f"expected one of {', '.join(choices)}")
    normalised = value.strip().upper() if upper else value.strip().lower()
    if normalised not in choices:
        raise ConfigError(variable, value, f"expected one of {', '.join(choices)}")
    return normalised


def parse_nonempty(variable: str, value: object) -> str:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ConfigError(variable, value, "must be a non-empty string")
    return str(value).strip()


@dataclass(frozen=True, slots=True)
class Settings:
    """Application settings (one field per ``BACKEND_<FIELD>`` variable)."""

    environment: str = "development"
    enable_test_error: bool = False
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 10
    metrics_enabled: bool = True
    version: str | None = None

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def test_error_enabled(self) -> bool:
        """The test-error endpoint exists only outside production, and only when asked for."""
        return self.enable_test_error and not self.is_production


_PARSERS: Final[dict[str, Callable[[str, object], Any]]] = {
    "environment": lambda var, v: parse_choice(var, v, ENVIRONMENTS, upper=False),
    "enable_test_error": parse_bool,
    "log_dir": lambda var, v: Path(parse_nonempty(var, v)),
    "log_level": lambda var, v: parse_choice(var, v, LOG_LEVELS, upper=True),
    "log_max_bytes": lambda var, v: parse_int(var, v, minimum=1024),
    "log_backup_count": lambda var, v: parse_int(var, v, minimum=1, maximum=1000),
    "metrics_enabled": parse_bool,
    "version": lambda var, v: parse_nonempty(var, v),
}


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(
    env: Mapping[str, str], overrides: Mapping[str, object] | None = None
) -> Settings:
    """Build :class:`Settings` from ``BACKEND_*`` variables, then apply ``overrides``.

    ``overrides`` uses the field names (``{"environment": "production"}``); values may be
    strings (parsed like the environment) or already-typed values. Unknown keys are an error.
    """
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name in known:
        raw = env.get(env_name(name))
        if raw is not None and (raw.strip() or name != "version"):
            values[name] = _PARSERS[name](env_name(name), raw)
    for name, raw_value in (overrides or {}).items():
        if name not in known:
            raise ConfigError(
                name, raw_value, f"unknown setting (known: {', '.join(sorted(known))})"
            )
        if raw_value is None and name == "version":
            values[name] = None
            continue
        values[name] = _PARSERS[name](env_name(name), raw_value)
    return replace(Settings(), **values)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """gunicorn settings (``BACKEND_BIND`` …); read by :mod:`clientforge_backend.gunicorn_conf`."""

    bind: str = "0.0.0.0:3000"
    workers: int = 2
    threads: int = 4
    timeout: int = 30
    graceful_timeout: int = 30
    keepalive: int = 5
    metrics_dir: Path = Path(DEFAULT_METRICS_DIR)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


def parse_bind(variable: str, value: object) -> str:
    text = parse_nonempty(variable, value)
    if not _BIND_RE.match(text):
        raise ConfigError(variable, value, "expected HOST:PORT, [IPv6]:PORT or unix:/path")
    if not text.startswith("unix:"):
        port = int(text.rsplit(":", 1)[1])
        if not 0 <= port <= 65535:
            raise ConfigError(variable, value, "port must be 0..65535")
    return text


def load_server_settings(env: Mapping[str, str]) -> ServerSettings:
    def get(name: str, parser: Callable[[str, object], T], default: T) -> T:
        raw = env.get(env_name(name))
        return default if raw is None else parser(env_name(name), raw)

    base = ServerSettings()
    settings = ServerSettings(
        bind=get("bind", parse_bind, base.bind),
        workers=get("workers", lambda v, x: parse_int(v, x, minimum=1, maximum=64), base.workers),
        threads=get("threads", lambda v, x: parse_int(v, x, minimum=1, maximum=256), base.threads),
        timeout=get("timeout", lambda v, x: parse_int(v, x, minimum=1), base.timeout),
        graceful_timeout=get(
            "graceful_timeout", lambda v, x: parse_int(v, x, minimum=1), base.graceful_timeout
        ),
        keepalive=get("keepalive", lambda v, x: parse_int(v, x, minimum=0), base.keepalive),
        metrics_dir=get("metrics_dir", lambda v, x: Path(parse_nonempty(v, x)), base.metrics_dir),
        tls_cert_file=get("tls_cert_file", _parse_optional_path, base.tls_cert_file),
        tls_key_file=get("tls_key_file", _parse_optional_path, base.tls_key_file),
    )
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigError(
            env_name("tls_key_file"),
            settings.tls_key_file,
            f"{env_name('tls_cert_file')} and {env_name('tls_key_file')} must be set together",
        )
    return settings


def _parse_optional_path(variable: str, value: object) -> Path | None:
    text = str(value).strip()
    return Path(text) if text else None
