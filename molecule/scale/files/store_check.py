#!/usr/bin/env python3
"""The central store holds what each replica holds (run on the store host by verify.yml).

    python3 store_check.py --store URL --replica NAME=URL ... --metric http_requests_total \
        --match 'job="backend"' [--wait 60] [--at-least N]

Waits (up to --wait seconds) until, for every replica, the store's series of ``metric`` with
``replica="NAME"`` have exactly the values the replica itself returns for the same series (the
replica label aside), then checks that ``max without (replica)`` at the store equals what one
replica returns. Prints one JSON object: the values per replica and at the store, the samples
and series the store holds per replica, and how long the store took to catch up. Exits 1 with
the differences when the store does not catch up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

Values = dict[str, float]


def query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=15) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def values(result: list[dict[str, Any]], drop: tuple[str, ...]) -> Values:
    """{labels without ``drop``, as sorted k=v text: value} of an instant-vector result."""
    out: Values = {}
    for item in result:
        labels = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()) if k not in drop)
        out[labels] = float(item["value"][1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--replica", action="append", required=True, help="NAME=URL")
    parser.add_argument("--replica-label", default="replica")
    parser.add_argument("--metric", required=True)
    parser.add_argument("--match", default="", help='label matchers inside the braces, e.g. job="backend"')
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument(
        "--at-least", type=float, default=0.0, help="wait also until each replica's own total reaches this (a scrape)"
    )
    args = parser.parse_args()

    replicas = dict(item.split("=", 1) for item in args.replica)
    drop = ("__name__", args.replica_label)
    matchers = [m for m in (args.match,) if m]
    selector = f"{args.metric}{{{', '.join(matchers)}}}"
    started = time.monotonic()
    while True:
        local = {name: values(query(url, selector), drop) for name, url in replicas.items()}
        stored = {}
        for name in replicas:
            own = ", ".join([*matchers, f'{args.replica_label}="{name}"'])
            stored[name] = values(query(args.store, f"{args.metric}{{{own}}}"), drop)
        caught_up = all(
            local[name] and stored[name] == local[name] and sum(local[name].values()) >= args.at_least
            for name in replicas
        )
        if caught_up or time.monotonic() - started > args.wait:
            break
        time.sleep(1)
    waited = round(time.monotonic() - started, 1)
    dedup = values(query(args.store, f"max without ({args.replica_label}) ({selector})"), drop)
    # Every raw sample the store holds per replica: a range selector returns them all (count_over_time
    # over {replica=...} would drop the metric names and collide).
    held = {name: query(args.store, f'{{{args.replica_label}="{name}"}}[1h]') for name in replicas}
    first = next(iter(replicas))
    report = {
        "caught_up_after_seconds": waited,
        "replica_values": local,
        "store_values": stored,
        "store_totals": {name: sum(stored[name].values()) for name in replicas},
        "store_dedup_values": dedup,
        "store_samples_by_replica": {name: sum(len(s["values"]) for s in held[name]) for name in replicas},
        "store_series_by_replica": {name: len(held[name]) for name in replicas},
        "caught_up": caught_up,
        "dedup_equals_one_replica": dedup == local[first],
    }
    print(json.dumps(report, sort_keys=True))
    return 0 if caught_up and report["dedup_equals_one_replica"] else 1


if __name__ == "__main__":
    sys.exit(main())
