"""Shared fixtures for the backend tests (runnable from the repo root or from ``app/``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The unit tests run prometheus_client in single-process mode. This must be decided before
# anything imports prometheus_client, so clear the variable at collection time.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
os.environ.pop("prometheus_multiproc_dir", None)

from flask import Flask  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from clientforge_backend import create_app  # noqa: E402
from clientforge_backend.logging_setup import shutdown_logging  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts real gunicorn / several processes (runs by default)"
    )


@pytest.fixture(autouse=True)
def _clean_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BACKEND_"):
            monkeypatch.delenv(name)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def make_app(log_dir: Path) -> Iterator[Callable[..., Flask]]:
    def factory(**overrides: Any) -> Flask:
        config: dict[str, Any] = {"log_dir": str(log_dir), "TESTING": True}
        config.update(overrides)
        return create_app(config)

    yield factory
    shutdown_logging()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] from Prometheus text exposition."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def metric_sum(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
def logs() -> Callable[[Path], list[dict[str, Any]]]:
    return read_json_lines


@pytest.fixture
def metrics_of() -> Callable[[str], dict[str, list[tuple[dict[str, str], float]]]]:
    return parse_metrics


@pytest.fixture
def msum() -> Callable[..., float]:
    return metric_sum
