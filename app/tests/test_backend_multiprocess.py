"""Real multi-process runs: gunicorn with 4 workers, and 4 processes sharing rotating logs.

Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

WORKERS = 4
HEALTH = "/api/v1/health"
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_dir: Path
    metrics_dir: Path

    def get(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def scrape(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200
        return body.decode()


def _worker_pids(samples: Samples) -> set[str]:
    return {labels["pid"] for labels, _ in samples.get("process_cpu_seconds_total", [])}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("gunicorn")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "BACKEND_BIND": f"127.0.0.1:{port}",
            "BACKEND_WORKERS": str(WORKERS),
            "BACKEND_THREADS": "4",
            "BACKEND_LOG_DIR": str(base / "logs"),
            "BACKEND_METRICS_DIR": str(base / "metrics"),
            "BACKEND_ENVIRONMENT": "development",
            "BACKEND_ENABLE_TEST_ERROR": "true",
        }
    )
    # Stale files from an earlier run must be wiped by on_starting.
    (base / "metrics").mkdir()
    (base / "metrics" / "counter_999999.db").write_bytes(b"garbage")
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:clientforge_backend.gunicorn_conf",
        "clientforge_backend:create_app()",
    ]
    stderr_path = base / "gunicorn.err"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(cmd, env=env, stdout=stderr, stderr=stderr, cwd=base)
    srv = Server(port, process, base / "logs", base / "metrics")
    try:
        deadline = time.monotonic() + 90  # generous: CI machines can be heavily loaded
        from prometheus_client.parser import text_string_to_metric_families

        while True:
            assert process.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, (
                "gunicorn did not start all workers in 90 s:\n" + stderr_path.read_text()
            )
            try:
                text = srv.scrape()
            except OSError:
                time.sleep(0.1)
                continue
            pids = {
                s.labels["pid"]
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "process_cpu_seconds_total"
            }
            if len(pids) == WORKERS:
                break
            time.sleep(0.1)
        yield srv
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _hammer(port: int, path: str, total: int, threads: int, time_limit: float) -> list[int]:
    """Send exactly ``total`` GETs over ``threads`` keep-alive connections; return statuses."""
    deadline = time.monotonic() + time_limit
    statuses: list[int] = []
    lock = threading.Lock()
    share = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def run(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local: list[int] = []
        try:
            for _ in range(count):
                if time.monotonic() > deadline:
                    break
                conn.request("GET", path, headers={"x-tenant-id": "loadtest"})
                response = conn.getresponse()
                response.read()
                local.append(response.status)
        finally:
            conn.close()
            with lock:
                statuses.extend(local)

    workers = [threading.Thread(target=run, args=(n,)) for n in share]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(time_limit + 15)
    return statuses


def test_metrics_dir_wiped_on_start(server: Server) -> None:
    assert not (server.metrics_dir / "counter_999999.db").exists()


def test_counter_rises_by_exactly_n(
    server: Server, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    n = 2000
    labels = {"route": HEALTH, "method": "GET", "status": "200"}
    before = metrics_of(server.scrape())
    statuses = _hammer(server.port, HEALTH, n, threads=8, time_limit=60)
    assert len(statuses) == n and set(statuses) == {200}
    after = metrics_of(server.scrape())
    for name in ("http_requests_total", "http_request_duration_seconds_count"):
        assert msum(after, name, **labels) - msum(before, name, **labels) == n, name
    assert msum(after, "http_request_duration_seconds_bucket", le="+Inf", **labels) == msum(
        after, "http_requests_total", **labels
    )
    assert not any(lbl.get("route") == "/metrics" for lbl, _ in after["http_requests_total"])
    assert after["active_connections"] == [({}, 0.0)]
    # process_* metrics cover every live worker, whichever worker answered the scrape.
    assert len(_worker_pids(after)) == WORKERS


def test_request_log_lines_across_workers(server: Server) -> None:
    status, _ = server.get(HEALTH, headers={"x-request-id": "unique-xyz"})
    assert status == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = (server.log_dir / "combined.log").read_text().splitlines()
        hits = [json.loads(x) for x in lines if "unique-xyz" in x]
        if hits:
            break
        time.sleep(0.1)
    assert len(hits) == 1
    assert hits[0]["route"] == HEALTH and hits[0]["tenant"] is None
    assert hits[0]["request_id"] == "unique-xyz" and hits[0]["status"] == 200
    assert len({json.loads(x)["pid"] for x in lines}) >= WORKERS  # one startup line each


def test_promtool_check_metrics(server: Server) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    server.get("/api/v1/contacts/1")
    server.get("/does/not/exist")
    text = server.scrape()
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_dead_worker_keeps_counts_and_leaves_process_metrics(
    server: Server, metrics_of: Callable[[str], Samples], msum: Callable[..., float]
) -> None:
    before = metrics_of(server.scrape())
    total_before = msum(before, "http_requests_total")
    victim = sorted(_worker_pids(before))[0]
    os.kill(int(victim), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "worker was not replaced"
        after = metrics_of(server.scrape())
        pids = _worker_pids(after)
        if victim not in pids and len(pids) == WORKERS:
            break
        time.sleep(0.2)
    assert msum(after, "http_requests_total") == total_before


def test_test_error_endpoint_under_gunicorn(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/api/v1/test/error", headers={"x-request-id": "gunicorn-err"})
        response = conn.getresponse()
        assert response.status == 500
        assert json.loads(response.read())["error"]
    finally:
        conn.close()
    errors = [
        json.loads(line)
        for line in (server.log_dir / "error.log").read_text().splitlines()
        if "gunicorn-err" in line
    ]
    assert len(errors) == 1 and errors[0]["level"] == "ERROR"


# --- 100 000 log lines from 4 processes through rotating files -------------------------------

LOG_PROCESSES = 4
LINES_PER_PROCESS = 25_000
MAX_BYTES = 256 * 1024
BACKUP_COUNT = 1000  # large enough to keep every rotated file, so every line can be counted


def _write_lines(log_dir: str, writer: int, count: int, start: Any) -> None:
    from clientforge_backend.config import Settings
    from clientforge_backend.logging_setup import configure_logging, shutdown_logging

    logger = configure_logging(
        Settings(log_dir=Path(log_dir), log_max_bytes=MAX_BYTES, log_backup_count=BACKUP_COUNT)
    )
    start.wait(30)
    try:
        for seq in range(count):
            logger.info("line", extra={"writer": writer, "seq": seq})
    finally:
        shutdown_logging()


def test_100k_lines_from_4_processes_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    start = context.Event()
    processes = [
        context.Process(target=_write_lines, args=(str(tmp_path), i, LINES_PER_PROCESS, start))
        for i in range(LOG_PROCESSES)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0

    seen: set[tuple[int, int]] = set()
    duplicates = 0
    files = sorted(tmp_path.glob("combined.log*"))
    assert len(files) > 10, "the test must actually rotate"
    for path in files:
        assert path.stat().st_size < MAX_BYTES + 64 * 1024, path
        for raw in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(raw)  # every line is valid JSON
            if record["message"] != "line":
                continue
            key = (record["writer"], record["seq"])
            duplicates += key in seen
            seen.add(key)
    assert duplicates == 0
    assert len(seen) == LOG_PROCESSES * LINES_PER_PROCESS
    assert not list(tmp_path.glob("*.rotate.*"))
