#!/usr/bin/env python3
"""Published ports of the lab hosts that never collide with another lab on the same machine.

Input: one JSON argument, ``{container name: ["127.0.0.1:9090:9090", ...]}`` (the inventory's
``lab_published_ports``). Output on stdout: the same mapping with every port resolved:

* a container that already exists keeps the bindings it was created with, so a re-run of
  ``make up`` changes nothing (Docker's own ephemeral ports included);
* otherwise the requested host port is kept when it is free on that address;
* otherwise (another checkout's lab, or any other program, holds it) the host port is left
  empty (``127.0.0.1::9090``) and Docker picks a free one when it creates the container.

The summary at the end of ``make up`` (playbooks/summary.yml) prints the ports Docker chose.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# "0.0.0.0:9090->9090/tcp", "127.0.0.1:32768->3000/tcp", ":::9090->9090/tcp", "[::1]:80->80/tcp"
DOCKER_PORT = re.compile(r"(?P<ip>\[[0-9a-fA-F:.]*\]|[0-9a-fA-F:.]*?):(?P<port>\d+)->")
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


@dataclass(frozen=True)
class PortSpec:
    """One ``[ip:][host_port:]container_port[/proto]`` entry of ``published_ports``."""

    ip: str
    host_port: str  # "" = Docker picks
    container_port: str  # "9090" or "9090/udp"

    @classmethod
    def parse(cls, spec: str) -> PortSpec:
        parts = str(spec).rsplit(":", 2)
        if len(parts) == 1:
            return cls("", "", parts[0])
        if len(parts) == 2:
            return cls("", parts[0], parts[1])
        return cls(parts[0], parts[1], parts[2])

    @property
    def key(self) -> str:
        """The key Docker uses in HostConfig.PortBindings ("9090/tcp")."""
        return self.container_port if "/" in self.container_port else f"{self.container_port}/tcp"

    def with_host_port(self, host_port: str) -> PortSpec:
        return PortSpec(self.ip, host_port, self.container_port)

    def __str__(self) -> str:
        if self.ip:
            return f"{self.ip}:{self.host_port}:{self.container_port}"
        return f"{self.host_port}:{self.container_port}" if self.host_port else self.container_port


def overlaps(ip_a: str, ip_b: str) -> bool:
    """Two bindings of the same port conflict when one of them is a wildcard or both are equal."""
    return ip_a in WILDCARDS or ip_b in WILDCARDS or ip_a.strip("[]") == ip_b.strip("[]")


def resolve(
    requested: dict[str, list[str]],
    existing: dict[str, dict[str, list[dict[str, str]]] | None],
    is_free: Callable[[str, int], bool],
) -> dict[str, list[str]]:
    """Resolve every requested spec (see the module docstring); pure, for the tests."""
    claimed: set[tuple[str, int]] = set()
    resolved: dict[str, list[str]] = {}
    for container, specs in requested.items():
        bindings = existing.get(container)
        out: list[str] = []
        for raw in specs:
            spec = PortSpec.parse(raw)
            if bindings is not None and bindings.get(spec.key):
                # Existing container: keep what it was created with (idempotent re-run).
                out.append(str(spec.with_host_port(bindings[spec.key][0].get("HostPort", ""))))
                continue
            if spec.host_port:
                port = int(spec.host_port)
                taken = any(p == port and overlaps(ip, spec.ip) for ip, p in claimed)
                if taken or not is_free(spec.ip, port):
                    spec = spec.with_host_port("")
                else:
                    claimed.add((spec.ip, port))
            out.append(str(spec))
        resolved[container] = out
    return resolved


def docker_bindings(container: str) -> dict[str, list[dict[str, str]]] | None:
    """HostConfig.PortBindings of an existing container, None when it does not exist."""
    result = subprocess.run(
        ["docker", "container", "inspect", "--format", "{{ json .HostConfig.PortBindings }}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return json.loads(result.stdout.strip() or "null") or {}


def docker_published(lines: Iterable[str]) -> set[tuple[str, int]]:
    """(ip, host port) of every port published by a running container (`docker ps` Ports column)."""
    return {(m["ip"], int(m["port"])) for line in lines for m in DOCKER_PORT.finditer(line)}


def port_is_free(ip: str, port: int, published: set[tuple[str, int]]) -> bool:
    if any(p == port and overlaps(ip, other) for other, p in published):
        return False
    address = ip.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    requested: dict[str, list[str]] = json.loads(argv[0])
    ps = subprocess.run(["docker", "ps", "--format", "{{ .Ports }}"], capture_output=True, text=True, check=True)
    published = docker_published(ps.stdout.splitlines())
    existing = {name: docker_bindings(name) for name in requested}
    resolved = resolve(requested, existing, lambda ip, port: port_is_free(ip, port, published))
    print(json.dumps(resolved))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
