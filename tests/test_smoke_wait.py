"""playbooks/files/smoke_wait.py: smoke.yml's waits are one polling command (a passing run prints
no retries) that reports the last value or error when the time is up."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("smoke_wait", REPO / "playbooks" / "files" / "smoke_wait.py")
assert spec and spec.loader
smoke_wait = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke_wait)


class Fake:
    """A Prometheus/Loki stand-in whose answers the test scripts: one JSON body per request."""

    def __init__(self) -> None:
        self.answers: list[dict] = []
        self.requests: list[tuple[str, dict, dict]] = []


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            state.requests.append((url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}))
            body = json.dumps(state.answers.pop(0) if len(state.answers) > 1 else state.answers[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def counter(value: int) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_until_the_counter_reaches_the_value(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.answers = [counter(1), counter(1), counter(26), counter(26)]
    clock = Clock()
    query = 'sum(http_requests_total{job="backend", instance="app1", route="/api/v1/health"})'
    outcome = smoke_wait.wait(
        {
            "kind": "prometheus_count",
            "url": url,
            "query": query,
            "at_least": 26,
            "seconds": 40,
            "user": "admin",
            "password": "pw",
        },
        sleep=clock.sleep,
        clock=clock,
    )
    assert outcome == {"ok": True, "value": 26, "error": ""}
    assert len(state.requests) == 3 and clock.now == 4
    path, params, headers = state.requests[0]
    assert path == "/api/v1/query" and params["query"] == [query]
    assert headers["authorization"] == "Basic YWRtaW46cHc="


def test_reports_the_last_value_when_the_time_is_up(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.answers = [counter(1)]
    clock = Clock()
    outcome = smoke_wait.wait(
        {"kind": "prometheus_count", "url": url, "query": "q", "at_least": 26, "seconds": 10},
        sleep=clock.sleep,
        clock=clock,
    )
    assert outcome == {"ok": False, "value": 1, "error": ""}
    assert clock.now == 10


def test_no_series_counts_as_zero_and_a_negative_target_reads_once(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.answers = [{"status": "success", "data": {"resultType": "vector", "result": []}}]
    outcome = smoke_wait.wait({"kind": "prometheus_count", "url": url, "query": "q", "at_least": -1})
    assert outcome == {"ok": True, "value": 0, "error": ""}
    assert len(state.requests) == 1


def test_an_unreachable_endpoint_is_retried_then_reported() -> None:
    clock = Clock()
    outcome = smoke_wait.wait(
        {"kind": "prometheus_count", "url": "http://127.0.0.1:9", "query": "q", "at_least": 1, "seconds": 4},
        sleep=clock.sleep,
        clock=clock,
    )
    assert outcome["ok"] is False and outcome["value"] is None
    assert "URLError" in outcome["error"] and clock.now == 4


def test_waits_for_the_line_in_loki_with_the_tenant_header(fake: tuple[Fake, str]) -> None:
    state, url = fake
    empty = {"status": "success", "data": {"resultType": "streams", "result": []}}
    found = {"status": "success", "data": {"resultType": "streams", "result": [{"stream": {}, "values": [["1", "x"]]}]}}
    state.answers = [empty, found]
    clock = Clock()
    query = '{job="backend", host="app1", level="ERROR"} |= "smoke-app1-1"'
    outcome = smoke_wait.wait(
        {"kind": "loki_line", "url": url, "query": query, "seconds": 30, "headers": {"X-Scope-OrgID": "clientforge"}},
        sleep=clock.sleep,
        clock=clock,
    )
    assert outcome == {"ok": True, "value": 1, "error": ""}
    path, params, headers = state.requests[-1]
    assert path == "/loki/api/v1/query_range" and params["query"] == [query] and params["since"] == ["15m"]
    assert headers["x-scope-orgid"] == "clientforge"
