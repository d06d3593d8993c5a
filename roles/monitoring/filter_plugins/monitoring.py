"""Filters shared by every role of the stack (loaded through the monitoring dependency).

``systemd_sandbox`` renders the one sandbox block that every unit of the stack uses, so that
the units cannot drift apart; a unit passes only what is specific to its program.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# Where systemd cannot create a user namespace (inside Docker, LXC, nspawn containers),
# PrivateUsers= together with ProtectProc= and a non-root User= fails the unit with 217/USER.
CONTAINER_VIRTUALIZATION = frozenset({"docker", "podman", "lxc", "container", "containerd", "systemd-nspawn", "openvz"})
BASE_ADDRESS_FAMILIES = ("AF_INET", "AF_INET6", "AF_UNIX")
PRIVATE_USERS_CHOICES = ("auto", "true", "false")


def systemd_private_users(setting: Any, virtualization_type: str | None) -> bool:
    """Resolve ``monitoring_systemd_private_users`` (auto, true or false) for one host."""
    value = str(setting).strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    if value != "auto":
        raise AnsibleFilterError(
            f"monitoring_systemd_private_users must be one of {', '.join(PRIVATE_USERS_CHOICES)}; got {setting!r}"
        )
    return str(virtualization_type or "") not in CONTAINER_VIRTUALIZATION


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")


def duration_seconds(value: Any) -> float:
    """Seconds in a Prometheus/Loki duration such as 1h30m, 10s or 500ms."""
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise AnsibleFilterError(f"{value!r} is not a duration like 10s, 1m30s or 500ms")
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def url_host(address: Any) -> str:
    """An address as the host part of a URL: IPv6 literals in brackets."""
    text = str(address).strip()
    return f"[{text}]" if ":" in text and not text.startswith("[") else text


def config_blame(stderr: Any, rendered: Any, sections: dict[str, str]) -> str:
    """The role variables behind the setting a program's checker refused in a rendered config.

    The refused line is the one the checker names ("line 92: ..."), else the first line of
    ``rendered`` that holds a value the checker quotes ('parsing time "2024-13-01"'); the
    top-level section holding it is looked up in ``sections`` ({section: "variable, ..."}).
    """
    text = str(stderr)
    lines = str(rendered).splitlines()
    number = None
    match = re.search(r"line (\d+)", text)
    if match:
        number = int(match.group(1))
    else:
        for quoted in re.findall(r'"([^"]{2,})"', text):
            found = [i for i, line in enumerate(lines, 1) if quoted in line and not line.lstrip().startswith("#")]
            if found:
                number = found[0]
                break
    if number is None:
        return "the role's variables (the checker names no line or value)"
    section = None
    for line in lines[:number]:
        top = re.match(r"^([A-Za-z_]+):", line)
        if top:
            section = top.group(1)
    return sections.get(section or "", f"the role's variables (section {section} of the config)")


_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def monitoring_bcrypt(password: str, seed: str, rounds: int = 10, purpose: str = "prometheus-web-config") -> str:
    """bcrypt hash of ``password`` whose salt is derived from ``purpose`` and ``seed``.

    The same (password, seed) gives the same hash, so a web config file (Prometheus', the
    exporters') is rewritten only when a password changes. The seed (host and user name) keeps
    salts unique per host and user; it never includes the password, so the salt leaks nothing
    about it. The ``bcrypt`` module is used directly because passlib 1.7 does not work with
    bcrypt >= 4.1.
    """
    try:
        import bcrypt
    except ImportError as exc:  # pragma: no cover - the venv has bcrypt
        raise AnsibleFilterError("monitoring_bcrypt needs the Python bcrypt package on the controller") from exc
    secret = str(password).encode()
    if len(secret) > 72:
        raise AnsibleFilterError("bcrypt passwords are limited to 72 bytes")
    digest = hashlib.sha256(f"{purpose}:{seed}".encode()).digest()[:16]
    salt22 = base64.b64encode(digest).decode()[:22].translate(str.maketrans(_STD, _BCRYPT))
    salt = f"$2b${int(rounds):02d}${salt22}".encode()
    return bcrypt.hashpw(secret, salt).decode()


def monitoring_hash_users(
    users: Mapping[str, str], host: str, purpose: str = "prometheus-web-config"
) -> dict[str, str]:
    """{user: bcrypt hash} for a web config (--web.config.file); the salt seed is "<host>/<user>".

    ``purpose`` names the program ("prometheus-web-config", "node_exporter-web-config"), so
    one password used by two programs on one host still gets two different hashes.
    """
    return {
        str(name): monitoring_bcrypt(password, f"{host}/{name}", purpose=purpose) for name, password in users.items()
    }


def _words(items: Iterable[Any] | str | None) -> list[str]:
    if items is None:
        return []
    if isinstance(items, str):
        return items.split()
    return [str(item) for item in items]


def systemd_sandbox(
    read_write_paths: Iterable[Any] | str | None,
    private_users: bool = True,
    address_families: Iterable[Any] | str | None = None,
    capabilities: Iterable[Any] | str | None = None,
    deny_syscalls: Iterable[Any] | str | None = ("@privileged", "@resources"),
    memory_deny_write_execute: bool = True,
    private_tmp: bool = True,
    proc_subset: str = "pid",
    umask: str = "0027",
    protect_home: str = "yes",
) -> str:
    """The [Service] sandbox lines of a stack unit.

    ``read_write_paths``: the only paths the program may write. ``address_families``: added to
    AF_INET/AF_INET6/AF_UNIX (e.g. AF_NETLINK for programs that list network interfaces).
    ``capabilities``: the bounding set, also granted as ambient capabilities (empty: none).
    ``deny_syscalls``: groups denied on top of @system-service. ``private_users``: the value of
    ``systemd_private_users``. ``proc_subset``: "all" for programs that read system-wide /proc
    files (e.g. /proc/stat for boot time). ``protect_home``: "read-only" for programs that must
    see the real /home and /root (node_exporter's filesystem collector), else "yes" hides them.
    """
    families = list(BASE_ADDRESS_FAMILIES) + [f for f in _words(address_families) if f not in BASE_ADDRESS_FAMILIES]
    paths = _words(read_write_paths)
    caps = _words(capabilities)
    deny = _words(deny_syscalls)
    lines = [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ]
    if paths:
        lines.append("ReadWritePaths=" + " ".join(paths))
    lines += [
        f"ProtectHome={protect_home}",
        f"PrivateTmp={'yes' if private_tmp else 'no'}",
        "PrivateDevices=yes",
        "DevicePolicy=closed",
        f"PrivateUsers={'yes' if private_users else 'no'}",
        "ProtectHostname=yes",
        "ProtectClock=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectProc=invisible",
        f"ProcSubset={proc_subset}",
        "RestrictAddressFamilies=" + " ".join(families),
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "RemoveIPC=yes",
        "LockPersonality=yes",
        "KeyringMode=private",
    ]
    if memory_deny_write_execute:
        lines.append("MemoryDenyWriteExecute=yes")
    lines.append("SystemCallFilter=@system-service")
    if deny:
        lines.append("SystemCallFilter=~" + " ".join(deny))
    lines += [
        "SystemCallErrorNumber=EPERM",
        "SystemCallArchitectures=native",
        "CapabilityBoundingSet=" + " ".join(caps),
        # A non-root service gets its capabilities only as ambient ones (e.g. CAP_NET_RAW for ICMP).
        "AmbientCapabilities=" + " ".join(caps),
        f"UMask={umask}",
    ]
    return "\n".join(lines)


def container_image_ref(
    repository: str, tag: str, digest: str = "", registry: str = "", from_archive: bool = False
) -> str:
    """The image reference a container runs: [registry/]repository:tag[@digest].

    With a digest the engine checks the content it pulls against it (a tag can move, a digest cannot).
    An image loaded from a `docker save` archive carries neither registry nor digest (the
    archive's SHA256SUMS entry is its check), so both are left out then.
    """
    if from_archive:
        return f"{repository}:{tag}"
    ref = f"{registry.rstrip('/')}/{repository}" if registry else repository
    ref = f"{ref}:{tag}"
    return f"{ref}@{digest}" if digest else ref


def container_image_archive(repository: str, tag: str) -> str:
    """File name of an image saved with `docker save` in the artifacts directory's images/ folder."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{repository}_{tag}") + ".tar"


def container_listen(listen_address: Any) -> dict[str, str]:
    """Map a listen address of systemd mode onto container mode.

    Inside the container the program listens on every interface of its network namespace, on
    the same port; the engine publishes that port on the address the host would have listened
    on ("0.0.0.0:9090" -> published on all addresses, "127.0.0.1:9090" -> loopback only).
    """
    text = str(listen_address)
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise AnsibleFilterError(f"container_listen: {text!r} has no port")
    published = f"{port}:{port}" if host in ("", "0.0.0.0") else f"{host}:{port}:{port}"
    return {"inside": f"0.0.0.0:{port}", "published": published, "port": port}


def container_binds(read_only: Iterable[str], read_write: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Bind mounts at the same path inside as on the host, so that every path the templates
    write into a config means the same file in both modes. Empty and repeated paths are dropped."""
    seen: set[str] = set()
    mounts = []
    for path, ro in [(p, False) for p in read_write] + [(p, True) for p in read_only]:
        if path and path not in seen:
            seen.add(path)
            mounts.append({"type": "bind", "source": path, "target": path, "read_only": ro})
    return mounts


def config_checker(args: list[str], spec: dict[str, Any], deploy_mode: str, binary: str) -> str:
    """The `validate:` command of a config file: the host's binary in systemd mode, the same
    binary (by name) from the component's image in container mode. "{file}" in args stands for
    the file under test; without it the file is the last argument."""
    if deploy_mode == "container":
        return container_check_command(spec, binary.rsplit("/", 1)[-1], args)
    words = [binary] + [a.replace("{file}", "%s") for a in args]
    if not any("{file}" in a for a in args):
        words.append("%s")
    return " ".join(words)


def container_http_healthcheck(url: str, interval: str = "15s", start_period: str = "60s") -> dict[str, Any]:
    """A container health check: the program answers HTTP on its own port.

    200, or 401 where basic auth protects every path (the check holds no password), counts as
    up. wget (busybox images such as Prometheus') or curl (Debian-based images), whichever the
    image has; TLS is not verified because the check connects to 127.0.0.1, not to the
    certificate's name.
    """
    quoted = shlex.quote(url)
    test = (
        f"wget -q -S -O /dev/null --no-check-certificate {quoted} 2>&1 | grep -qE 'HTTP/[0-9.]+ (200|401)'"
        f" || curl -sk -o /dev/null -w '%{{http_code}}' {quoted} | grep -qE '^(200|401)$'"
    )
    return {
        "test": ["CMD-SHELL", test],
        "interval": interval,
        "timeout": "5s",
        "retries": 3,
        "start_period": start_period,
    }


def container_check_command(spec: dict[str, Any], entrypoint: str, args: list[str]) -> str:
    """A `validate:` command that runs a config checker from the component's image.

    Used when the host has no binary (container mode): the file under test (%s) and the
    container's own mounts are mounted read-only at the same paths, so paths inside the file
    resolve as they will for the real container. No network, no capabilities, read-only root.
    "{file}" in args stands for the file under test; without it the file is the last argument.
    """
    mounts = [m for m in spec.get("mounts", []) if m.get("type", "bind") == "bind"]
    words = ["docker", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL"]
    words += ["--security-opt", "no-new-privileges", "--user", "0:0", "--entrypoint", entrypoint]
    for mount in mounts:
        words += ["-v", f"{mount['source']}:{mount['target']}:ro"]
    script = " ".join(shlex.quote(w) for w in words) + ' -v "$1:$1:ro" ' + shlex.quote(spec["image"])
    rendered = [shlex.quote(a).replace("{file}", "'\"$1\"'") if "{file}" in a else shlex.quote(a) for a in args]
    if not any("{file}" in a for a in args):
        rendered.append('"$1"')
    script += " " + " ".join(rendered)
    return f"/bin/sh -c {shlex.quote('exec ' + script)} check %s"


class FilterModule:
    """Shared filters of the monitoring stack."""

    def filters(self) -> dict[str, Any]:
        return {
            "config_blame": config_blame,
            "config_checker": config_checker,
            "container_binds": container_binds,
            "container_image_archive": container_image_archive,
            "container_http_healthcheck": container_http_healthcheck,
            "container_image_ref": container_image_ref,
            "container_listen": container_listen,
            "duration_seconds": duration_seconds,
            "monitoring_bcrypt": monitoring_bcrypt,
            "monitoring_hash_users": monitoring_hash_users,
            "systemd_private_users": systemd_private_users,
            "systemd_sandbox": systemd_sandbox,
            "url_host": url_host,
        }
