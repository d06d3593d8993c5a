#!/usr/bin/env python3
"""Check an Alertmanager web config (--web.config.file) before it replaces the one in use.

Alertmanager has no offline checker for this file (promtool's check web-config is not on every
Alertmanager host); it reports a bad file only when a request arrives. The role writes the file
as JSON, which is YAML too, so this check needs nothing but Python's standard library:

    check_web_config.py FILE

Exit status 0 when the file is good; otherwise 1 and one line saying what is wrong.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
from typing import Any

KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
BCRYPT = re.compile(r"^\$2[aby]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$")


def check(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "not a mapping"
    unknown = sorted(set(data) - KEYS)
    if unknown:
        return f"unknown keys {unknown}; allowed: {sorted(KEYS)}"
    tls = data.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, dict) or not tls.get("cert_file") or not tls.get("key_file"):
            return "tls_server_config needs cert_file and key_file"
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls["cert_file"], tls["key_file"])
        except (OSError, ssl.SSLError) as exc:
            return f"the certificate {tls['cert_file']} and key {tls['key_file']} do not load together: {exc}"
    users = data.get("basic_auth_users")
    if users is not None:
        if not isinstance(users, dict) or not users:
            return "basic_auth_users must map user names to bcrypt hashes"
        plain = sorted(name for name, hashed in users.items() if not BCRYPT.match(str(hashed)))
        if plain:
            return f"basic_auth_users {plain}: not bcrypt hashes (a plain password would never match)"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as handle:
            data = json.loads("".join(line for line in handle if not line.startswith("#")))
    except (OSError, ValueError) as exc:
        print(f"{argv[1]}: {exc}")
        return 1
    problem = check(data)
    if problem:
        print(f"{argv[1]}: {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
