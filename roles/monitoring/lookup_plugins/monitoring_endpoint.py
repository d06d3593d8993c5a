"""The one way a consumer finds a producer: ``query('monitoring_endpoint', 'loki')``.

For every host of the component's inventory group (or the hosts given with ``hosts=``) it
returns the URL other hosts use to reach that component there: scheme, address and port come
from the serving host's own variables, evaluated as the component's role evaluates them on that
host (the role's defaults under the host's inventory and extra vars). Each role states its own
URL once, as ``__<role>_url`` in its defaults; Prometheus targets, Promtail push URLs, Grafana
datasources and the smoke and status playbooks all read it through this lookup.

    query('monitoring_endpoint', 'loki')                      -> ['https://mon1:3100']
    query('monitoring_endpoint', 'backend', hosts=['app1'])   -> ['http://app1:3000']

A component with a second endpoint states it under its own name: ``alertmanager_cluster`` is
``__alertmanager_cluster_peer`` (address:port of the gossip, which is not a URL).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

ROLES_DIR = Path(__file__).resolve().parents[2]
# Component -> (its inventory group, its role[, the variable naming the endpoint; default __<role>_url]).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "backend": ("backend", "backend"),
    "prometheus": ("prometheus", "prometheus"),
    # The central store that the Prometheus replicas remote_write to: Prometheus, run as a receiver.
    "metrics_store": ("metrics_store", "prometheus"),
    "loki": ("loki", "loki"),
    "promtail": ("promtail", "promtail"),
    "grafana": ("grafana", "grafana"),
    "alertmanager": ("alertmanager", "alertmanager"),
    "alertmanager_cluster": ("alertmanager", "alertmanager", "__alertmanager_cluster_peer"),
    "node_exporter": ("node_exporter", "node_exporter"),
    "blackbox_exporter": ("blackbox_exporter", "blackbox_exporter"),
}


@cache
def _defaults_path(role: str) -> str:
    return str(ROLES_DIR / role / "defaults" / "main.yml")


class LookupModule(LookupBase):
    """URLs of a component on the hosts that serve it."""

    def _defaults(self, role: str) -> dict[str, Any]:
        data = self._loader.load_from_file(_defaults_path(role), trusted_as_template=True) or {}
        return dict(data)

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        variables = variables or {}
        hostvars = variables.get("hostvars")
        groups = variables.get("groups", {})
        if hostvars is None:
            raise AnsibleLookupError("monitoring_endpoint needs hostvars (use it in a play, not in a vars file)")
        urls: list[str] = []
        for term in terms:
            component = str(term)
            if component not in COMPONENTS:
                raise AnsibleLookupError(
                    f"monitoring_endpoint: unknown component {component!r} (known: {', '.join(COMPONENTS)})"
                )
            group, role, *variable = COMPONENTS[component]
            hosts = kwargs.get("hosts")
            hosts = [hosts] if isinstance(hosts, str) else list(hosts if hosts is not None else groups.get(group, []))
            base = {**self._defaults("monitoring"), **self._defaults(role)}
            for host in hosts:
                own = {
                    **base,
                    **hostvars.raw_get(host),
                    "inventory_hostname": host,
                    "groups": groups,
                    "hostvars": hostvars,
                    "role_path": str(ROLES_DIR / role),
                }
                name = variable[0] if variable else f"__{role}_url"
                if name not in own:
                    raise AnsibleLookupError(
                        f"monitoring_endpoint: roles/{role}/defaults/main.yml does not define {name}"
                    )
                templar = self._templar.copy_with_new_env(available_variables=own)
                urls.append(str(templar.template(own[name])).strip())
        return urls
