#!/usr/bin/env python3
"""Remote-write lag of Prometheus replicas at their central store (issue target: p95 <= 15 s).

    python3 remote_write_lag.py --store http://store:9090 --replica prom1=http://prom1:9090 \
        --replica prom2=http://prom2:9090 [--rounds 30] [--interval 1] [--ca-file CA] [--user U]

Each round evaluates, at one instant T (the same ``time`` parameter for every query), the newest
sample of each replica's self-scrape ``up{job="prometheus", instance=<replica>}``:

* at the replica itself, and
* at the store, where it arrives with the replica's ``replica`` external label.

lag = newest timestamp at the replica - newest timestamp at the store: how far, in sample time,
the store is behind what the replica already has. freshness = T - newest timestamp at the store:
how old the newest sample an operator can query at the store is (lag plus up to one scrape
interval). Prints one JSON object: per replica p50, p95 and max of both, over every round.

Only the standard library, so that it runs on any lab or production host (the scale scenario
copies it to the store host). The password for --user comes from REMOTE_WRITE_LAG_PASSWORD.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import ssl
import statistics
import sys
import time
import urllib.parse
import urllib.request
from typing import Any


def newest_timestamp(base: str, selector: str, at: float, context: ssl.SSLContext, auth: str | None) -> float | None:
    """Timestamp (s) of the newest sample of ``selector`` at ``base`` as of ``at``, or None."""
    query = urllib.parse.urlencode({"query": f"timestamp({selector})", "time": f"{at:.3f}"})
    request = urllib.request.Request(f"{base.rstrip('/')}/api/v1/query?{query}")
    if auth:
        request.add_header("Authorization", auth)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    # Nearest rank: the smallest value with at least `share` of the values at or below it.
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"rounds": 0}
    return {
        "rounds": len(values),
        "p50": round(statistics.median(values), 2),
        "p95": round(percentile(values, 0.95), 2),
        "max": round(max(values), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="URL of the central store (Prometheus API)")
    parser.add_argument("--replica", action="append", required=True, help="NAME=URL of a replica (repeat)")
    parser.add_argument("--replica-label", default="replica", help="external label naming the replica")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--ca-file", default="")
    parser.add_argument("--user", default="")
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.ca_file or None)
    auth = None
    if args.user:
        token = f"{args.user}:{os.environ.get('REMOTE_WRITE_LAG_PASSWORD', '')}".encode()
        auth = "Basic " + base64.b64encode(token).decode()
    replicas = dict(item.split("=", 1) for item in args.replica)
    lag: dict[str, list[float]] = {name: [] for name in replicas}
    freshness: dict[str, list[float]] = {name: [] for name in replicas}
    missing: dict[str, int] = dict.fromkeys(replicas, 0)
    for round_number in range(args.rounds):
        at = time.time()
        for name, url in replicas.items():
            selector = f'up{{job="prometheus", instance="{name}"}}'
            local = newest_timestamp(url, selector, at, context, auth)
            stored_selector = f'up{{job="prometheus", instance="{name}", {args.replica_label}="{name}"}}'
            stored = newest_timestamp(args.store, stored_selector, at, context, auth)
            if local is None or stored is None:
                missing[name] += 1
                continue
            lag[name].append(max(0.0, local - stored))
            freshness[name].append(at - stored)
        if round_number + 1 < args.rounds:
            time.sleep(args.interval)
    report = {
        name: {
            "lag_seconds": summary(lag[name]),
            "freshness_seconds": summary(freshness[name]),
            "missing": missing[name],
        }
        for name in replicas
    }
    print(json.dumps(report, sort_keys=True))
    return 0 if all(values for values in lag.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
