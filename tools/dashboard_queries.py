#!/usr/bin/env python3
"""List the queries of the Grafana dashboards, with Grafana's variables substituted.

Used by the dashboard tests (PromQL through promtool, LogQL through a checker) and by the
stack scenario, which runs every PromQL panel query against the real Prometheus and expects
data. ``--json`` prints ``[{"dashboard", "panel", "expr"}]`` for one datasource type.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO / "files" / "dashboards"
# Values Grafana would send for its variables, so parsers and Prometheus see real queries.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__auto": "1m",
    "$__range": "1h",
    "$host": "app1|app2",
    "$job": ".*",
}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return panels


def queries(dashboard: dict, ds_type: str) -> list[tuple[str, str]]:
    """(panel title, expr) of every target whose datasource has type ``ds_type``."""
    found = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == ds_type:
                found.append((panel["title"], target["expr"]))
    return found


def substitute(expr: str, overrides: dict[str, str] | None = None) -> str:
    values = {**SUBSTITUTIONS, **(overrides or {})}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable left in {expr!r}")
    return expr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--type", default="prometheus", help="datasource type (prometheus, loki)")
    parser.add_argument("--host-regex", default=".+", help="value of $host")
    parser.add_argument("--dir", type=Path, default=DASHBOARD_DIR)
    args = parser.parse_args(argv)
    rows = [
        {"dashboard": path.stem, "panel": title, "expr": substitute(expr, {"$host": args.host_regex})}
        for path in sorted(args.dir.glob("*.json"))
        for title, expr in queries(load(path), args.type)
    ]
    json.dump(rows, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
