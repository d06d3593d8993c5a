"""Filters of the monitoring_firewall role: per-port source address sets derived from the inventory."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(entry: Any, origin: str) -> Network:
    text = str(entry).strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise AnsibleFilterError(
            f"{origin}: {text!r} is not an IPv4/IPv6 address or CIDR network (host names are not allowed: "
            "nftables sets hold addresses)"
        ) from exc


def _is_literal_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def _usable(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def monitoring_firewall_host_addresses(host: str, hostvars: Mapping[str, Any]) -> list[str]:
    """Addresses connections from ``host`` come from.

    ``monitoring_firewall_source_addresses`` (host var) replaces the detection; otherwise every
    IPv4/IPv6 address in the host's facts (loopback and link-local left out), plus
    ``monitoring_address`` / ``ansible_host`` when they are literal IPs. ``monitoring_firewall_extra_sources``
    (host var) is always added.
    """
    hv = hostvars[host]
    override = hv.get("monitoring_firewall_source_addresses") or []
    addresses: list[str] = []
    if override:
        addresses.extend(str(a) for a in override)
    else:
        facts = hv.get("ansible_facts") or {}
        for key in ("all_ipv4_addresses", "all_ipv6_addresses"):
            addresses.extend(str(a) for a in facts.get(key) or [] if _usable(str(a)))
        for key in ("monitoring_address", "ansible_host"):
            if _is_literal_ip(hv.get(key)):
                addresses.append(str(hv.get(key)))
    addresses.extend(str(a) for a in hv.get("monitoring_firewall_extra_sources") or [])
    if not addresses:
        raise AnsibleFilterError(
            f"no source address known for {host}: its facts were not gathered in this play (run the play on all "
            f"hosts with facts, not with --limit) and monitoring_firewall_source_addresses is not set for {host}"
        )
    return addresses


def monitoring_firewall_rules(services: Iterable[Mapping[str, Any]], hostvars: Mapping[str, Any]) -> list[dict]:
    """Resolve ``[{name, port, protocols, hosts, sources, sources_var}]`` into ``[{name, port, protocols, v4, v6}]``.

    ``hosts`` are inventory hosts whose addresses are allowed, ``sources`` extra addresses or
    networks (``sources_var`` names the variable they come from, for error messages). The
    networks of each family are collapsed (no overlaps, so nftables interval sets accept them)
    and written as plain addresses when they are single hosts.
    """
    rules = []
    for service in services:
        networks: list[Network] = []
        for host in service.get("hosts") or []:
            origin = f"address of {host} (facts or monitoring_firewall_source_addresses/extra_sources)"
            networks.extend(_network(a, origin) for a in monitoring_firewall_host_addresses(host, hostvars))
        sources = service.get("sources") or []
        if isinstance(sources, str | bytes) or not isinstance(sources, Iterable):
            raise AnsibleFilterError(f"{service.get('sources_var')} must be a list of addresses or CIDRs")
        networks.extend(_network(s, str(service.get("sources_var"))) for s in sources)
        families = {}
        for version, key in ((4, "v4"), (6, "v6")):
            collapsed = ipaddress.collapse_addresses(n for n in networks if n.version == version)
            families[key] = [
                str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                for n in sorted(collapsed, key=lambda n: (int(n.network_address), n.prefixlen))
            ]
        protocols = [str(p) for p in service.get("protocols") or ["tcp"]]
        if not set(protocols) <= {"tcp", "udp"}:
            raise AnsibleFilterError(
                f"service {service.get('name')}: protocols must be tcp and/or udp; got {protocols}"
            )
        rules.append({"name": str(service["name"]), "port": int(service["port"]), "protocols": protocols, **families})
    return rules


def monitoring_firewall_covers(address: str, networks: Iterable[str]) -> bool:
    """True when ``address`` lies in one of ``networks`` (addresses or CIDRs)."""
    ip = ipaddress.ip_address(str(address).split("%")[0])
    return any(ip in _network(n, "networks") for n in networks if _network(n, "networks").version == ip.version)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "monitoring_firewall_host_addresses": monitoring_firewall_host_addresses,
            "monitoring_firewall_rules": monitoring_firewall_rules,
            "monitoring_firewall_covers": monitoring_firewall_covers,
        }
