"""Filters of the alertmanager role: receivers from the role's short forms, the cluster's other peers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def alertmanager_receivers(
    webhooks: Iterable[Mapping[str, Any]],
    emails: Iterable[Mapping[str, Any]],
    others: Iterable[Mapping[str, Any]],
    route_receiver: str,
) -> list[dict[str, Any]]:
    """The ``receivers`` list of alertmanager.yml.

    Webhook entries ``{name, url, send_resolved, max_alerts}`` and email entries ``{name, to,
    send_resolved, headers}`` become one receiver each; ``others`` are Alertmanager receivers as
    they are. The top-level route's receiver is added without integrations when no entry names
    it: its alerts are then visible in Alertmanager but sent nowhere.
    """
    receivers: list[dict[str, Any]] = []
    for hook in webhooks:
        if not hook.get("name") or not hook.get("url"):
            raise AnsibleFilterError(f"alertmanager_webhook_receivers entries need name and url; got {dict(hook)}")
        config: dict[str, Any] = {"url": str(hook["url"]), "send_resolved": bool(hook.get("send_resolved", True))}
        if int(hook.get("max_alerts", 0)):
            config["max_alerts"] = int(hook["max_alerts"])
        receivers.append({"name": str(hook["name"]), "webhook_configs": [config]})
    for mail in emails:
        if not mail.get("name") or not mail.get("to"):
            raise AnsibleFilterError(f"alertmanager_email_receivers entries need name and to; got {dict(mail)}")
        config = {"to": str(mail["to"]), "send_resolved": bool(mail.get("send_resolved", False))}
        if mail.get("headers"):
            config["headers"] = dict(mail["headers"])
        receivers.append({"name": str(mail["name"]), "email_configs": [config]})
    receivers += [dict(other) for other in others]
    names = [r.get("name") for r in receivers]
    duplicated = sorted({str(n) for n in names if names.count(n) > 1})
    if duplicated:
        raise AnsibleFilterError(f"receiver names must be unique; defined more than once: {', '.join(duplicated)}")
    if route_receiver not in names:
        receivers.append({"name": route_receiver})
    return receivers


def alertmanager_peers(hosts: Iterable[str], addresses: Iterable[str], me: str) -> list[str]:
    """The gossip addresses (from the monitoring_endpoint lookup, as each peer serves) of every host but ``me``."""
    return [address for host, address in zip(hosts, addresses, strict=True) if host != me]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "alertmanager_peers": alertmanager_peers,
            "alertmanager_receivers": alertmanager_receivers,
        }
