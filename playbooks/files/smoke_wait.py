#!/usr/bin/env python3
"""Waits, in one command, for what smoke.yml checks, so that a passing run prints no retries.

Runs on the host smoke.yml delegates to (standard library only). The JSON in the environment
variable SMOKE_WAIT says what to wait for:

* ``{"kind": "prometheus_count", "url": ..., "query": ..., "at_least": N}``: the value of an
  instant query is at least N (N < 0: read it once, without waiting);
* ``{"kind": "loki_line", "url": ..., "query": ..., "headers": {...}}``: a Loki range query
  (LogQL, last 15 minutes) returns at least one line;

plus ``seconds`` (how long to wait), ``interval``, ``ca_file`` ("" for the system CAs) and
``user``/``password`` (basic auth; "" for none). Prints one JSON object: ``ok``, ``value`` (the
counter, or the number of lines found) and ``error`` (the last failure while polling, if any).
The exit code is 0 whatever the outcome: the playbook asserts and words the failure.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable


def fetch(url: str, spec: dict) -> dict:
    request = urllib.request.Request(url, headers=dict(spec.get("headers") or {}))
    if spec.get("user"):
        token = base64.b64encode(f"{spec['user']}:{spec.get('password', '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=spec.get("ca_file") or None)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.load(response)


def prometheus_count(spec: dict) -> tuple[bool, int]:
    url = f"{spec['url']}/api/v1/query?{urllib.parse.urlencode({'query': spec['query']})}"
    result = fetch(url, spec)["data"]["result"]
    value = int(float(result[0]["value"][1])) if result else 0
    return value >= int(spec["at_least"]), value


def loki_line(spec: dict) -> tuple[bool, int]:
    params = urllib.parse.urlencode({"query": spec["query"], "limit": 10, "since": "15m"})
    streams = fetch(f"{spec['url']}/loki/api/v1/query_range?{params}", spec)["data"]["result"]
    lines = sum(len(stream.get("values", [])) for stream in streams)
    return lines > 0, lines


CHECKS: dict[str, Callable[[dict], tuple[bool, int]]] = {
    "prometheus_count": prometheus_count,
    "loki_line": loki_line,
}


def wait(spec: dict, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict:
    check = CHECKS[spec["kind"]]
    deadline = clock() + float(spec.get("seconds", 40))
    once = spec["kind"] == "prometheus_count" and int(spec["at_least"]) < 0
    outcome: dict = {"ok": False, "value": None, "error": ""}
    while True:
        try:
            outcome["ok"], outcome["value"] = check(spec)
            outcome["error"] = ""
        except Exception as error:  # any failure is reported, and retried until the deadline
            outcome["error"] = f"{type(error).__name__}: {error}"
        if outcome["ok"] or once or clock() >= deadline:
            return outcome
        sleep(float(spec.get("interval", 2)))


if __name__ == "__main__":
    print(json.dumps(wait(json.loads(os.environ["SMOKE_WAIT"]))))
