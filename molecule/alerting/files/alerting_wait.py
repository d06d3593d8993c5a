#!/usr/bin/env python3
"""Waits, in one command, for what the alerting scenario checks (no FAILED - RETRYING lines).

The JSON in the environment variable ALERTING_WAIT says what to wait for:

* ``{"kind": "cluster", "url": AM, "peers": N}``: the Alertmanager reports N peers, status ready;
* ``{"kind": "alerts", "url": AM, "labels": {name: value, ...}, "count": N}``: N active alerts
  with these labels in that Alertmanager (0: none);
* ``{"kind": "prometheus", "url": P, "query": Q, "value": V}``: every sample of Q equals V and
  there is at least one;
* ``{"kind": "notifications", "file": F, "alertname": A, "status": S, "count": N}``: at least N
  webhook notifications in F with status S (firing/resolved) carrying alert A;

plus ``seconds`` (how long to wait), ``interval`` and ``since`` (epoch seconds: elapsed time
is measured from it). Prints one JSON object: ``ok``, ``value``, ``elapsed`` (seconds from
``since`` to the first success), ``details`` and ``error``. Exit code 0 whatever the outcome:
the playbook asserts and words the failure.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def cluster(spec: dict) -> tuple[bool, Any, Any]:
    status = fetch(f"{spec['url']}/api/v2/status")["cluster"]
    peers = sorted(p.get("name", "?") for p in status.get("peers") or [])
    return status.get("status") == "ready" and len(peers) == int(spec["peers"]), len(peers), status.get("status")


def alerts(spec: dict) -> tuple[bool, Any, Any]:
    filters = [("filter", f'{name}="{value}"') for name, value in spec["labels"].items()]
    query = urllib.parse.urlencode([*filters, ("active", "true")])
    found = fetch(f"{spec['url']}/api/v2/alerts?{query}")
    return len(found) == int(spec["count"]), len(found), [a.get("labels") for a in found]


def prometheus(spec: dict) -> tuple[bool, Any, Any]:
    url = f"{spec['url']}/api/v1/query?{urllib.parse.urlencode({'query': spec['query']})}"
    result = fetch(url)["data"]["result"]
    values = [float(sample["value"][1]) for sample in result]
    return bool(values) and all(v == float(spec["value"]) for v in values), values, [r["metric"] for r in result]


def notifications(spec: dict) -> tuple[bool, Any, Any]:
    matching = []
    if os.path.exists(spec["file"]):
        with open(spec["file"], encoding="utf-8") as handle:
            for line in handle:
                entry = json.loads(line)
                body = entry["body"]
                names = {a.get("labels", {}).get("alertname") for a in body.get("alerts", [])}
                if body.get("status") == spec["status"] and spec["alertname"] in names:
                    matching.append(entry)
    return len(matching) >= int(spec["count"]), len(matching), matching


CHECKS: dict[str, Callable[[dict], tuple[bool, Any, Any]]] = {
    "cluster": cluster,
    "alerts": alerts,
    "prometheus": prometheus,
    "notifications": notifications,
}


def wait(spec: dict) -> dict:
    check = CHECKS[spec["kind"]]
    deadline = time.monotonic() + float(spec.get("seconds", 60))
    since = float(spec.get("since") or time.time())
    outcome: dict = {"ok": False, "value": None, "details": None, "error": "", "elapsed": None}
    while True:
        try:
            outcome["ok"], outcome["value"], outcome["details"] = check(spec)
            outcome["error"] = ""
        except Exception as error:  # any failure is reported, and retried until the deadline
            outcome["error"] = f"{type(error).__name__}: {error}"
        if outcome["ok"] or time.monotonic() >= deadline:
            outcome["elapsed"] = round(time.time() - since, 1)
            return outcome
        time.sleep(float(spec.get("interval", 1)))


if __name__ == "__main__":
    print(json.dumps(wait(json.loads(os.environ["ALERTING_WAIT"]))))
