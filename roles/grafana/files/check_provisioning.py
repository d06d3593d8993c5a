#!/usr/bin/env python3
"""Check a Grafana provisioning file before it replaces the one in use (Ansible's validate:).

Grafana has no offline checker: it reports a broken provisioning file only in its log, at
load time, and then runs without the datasource. This checks what the stack relies on:

    check_provisioning.py datasources FILE UID[,UID...]   the datasources, with exactly these UIDs
    check_provisioning.py dashboards FILE DIRECTORY        one file provider reading DIRECTORY

Exit status 0 when the file is good; otherwise 1 and one line saying what is wrong.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

URL = re.compile(r"^https?://[^/\s]+")
TYPES = {"prometheus", "loki", "alertmanager"}
# Alertmanager APIs Grafana's alertmanager datasource speaks.
IMPLEMENTATIONS = {"prometheus", "mimir", "cortex"}


def check_datasources(data: dict[str, Any], uids: list[str]) -> str | None:
    if data.get("apiVersion") != 1:
        return "apiVersion must be 1"
    sources = data.get("datasources") or []
    if not isinstance(sources, list):
        return "datasources must be a list"
    for source in sources:
        for key in ("name", "type", "uid", "url", "access"):
            if not source.get(key):
                return f"datasource {source.get('name', '?')} has no {key}"
        if source["type"] not in TYPES:
            return f"datasource {source['name']}: unknown type {source['type']}"
        if not URL.match(str(source["url"])):
            return f"datasource {source['name']}: url {source['url']!r} is not an http(s) URL"
        # Without it Grafana takes the Alertmanager for its own (Mimir-style) API and every call fails.
        implementation = (source.get("jsonData") or {}).get("implementation")
        if source["type"] == "alertmanager" and implementation not in IMPLEMENTATIONS:
            return (
                f"datasource {source['name']}: jsonData.implementation is {implementation!r},"
                f" expected one of {sorted(IMPLEMENTATIONS)}"
            )
    found = [s["uid"] for s in sources]
    if found != uids:
        return f"datasource UIDs are {found}, the dashboards need {uids}"
    if sum(1 for s in sources if s.get("isDefault")) > 1:
        return "more than one default datasource"
    return None


def check_dashboards(data: dict[str, Any], directory: str) -> str | None:
    if data.get("apiVersion") != 1:
        return "apiVersion must be 1"
    providers = data.get("providers") or []
    if len(providers) != 1:
        return f"expected one dashboard provider, found {len(providers)}"
    provider = providers[0]
    if provider.get("type") != "file":
        return "the dashboard provider must be of type file"
    if (provider.get("options") or {}).get("path") != directory:
        return f"the dashboard provider reads {(provider.get('options') or {}).get('path')!r}, not {directory!r}"
    if not provider.get("folderUid"):
        return "the dashboard provider has no folderUid"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("datasources", "dashboards"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, path, expected = argv[1], argv[2], argv[3]
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"{path}: {exc}")
        return 1
    if not isinstance(data, dict):
        print(f"{path}: not a mapping")
        return 1
    if kind == "datasources":
        problem = check_datasources(data, [u for u in expected.split(",") if u])
    else:
        problem = check_dashboards(data, expected)
    if problem:
        print(f"{path}: {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
