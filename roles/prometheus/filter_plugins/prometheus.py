"""Filters of the prometheus role: inventory-derived scrape, probe and Alertmanager entries.

The web config's bcrypt hashes come from the shared filter ``monitoring_hash_users`` (role
``monitoring``), which the exporters' and Alertmanager's web configs use too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError


def _address(hostvars: Mapping[str, Any], host: str) -> str:
    address = str(hostvars[host].get("monitoring_address") or host)
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def _static_configs(hosts: Iterable[str], hostvars: Mapping[str, Any], port_var: str, port: int) -> list[dict]:
    configs = []
    for host in hosts:
        host_port = hostvars[host].get(port_var) if port_var else None
        configs.append(
            {
                "targets": [f"{_address(hostvars, host)}:{int(host_port or port)}"],
                "labels": {"instance": host},
            }
        )
    return configs


def _not_skipped(hosts: Iterable[str], hostvars: Mapping[str, Any], component: str) -> list[str]:
    """``hosts`` less those where the validation phase skipped ``component`` (its artifact is
    missing in the lab: release_artifact_skipped). Nothing serves there, so a target would only
    keep ScrapeTargetDown firing."""
    return [
        h for h in hosts if h not in hostvars or not (hostvars[h].get("release_artifact_skipped") or {}).get(component)
    ]


def _unique(hosts: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for host in hosts:
        if host not in seen:
            seen.append(host)
    return seen


def prometheus_scrape_jobs(
    components: list[Mapping[str, Any]],
    groups: Mapping[str, list[str]],
    hostvars: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> list[dict]:
    """scrape_configs entries for every component group that has hosts in the inventory.

    ``settings`` carries scheme, ca_file, username, password_file, node_exporter_group,
    node_exporter_port and endpoints ({job: {host: URL}} from the monitoring_endpoint lookup:
    the stack's components are scraped at the scheme, address and port their host serves).
    Hosts where the component was skipped (release_artifact_skipped[<job>]) get no target.
    Each target gets ``instance`` = the inventory host name. Components without endpoints use
    ``monitoring_address`` (default: the host name) with the component's port, overridable per
    host by the component's port variable.
    """
    jobs: list[dict] = []
    node_group = settings.get("node_exporter_group") or "node_exporter"
    node_hosts = [h for h in groups.get(node_group, []) if hostvars[h].get("node_exporter_enabled", True) is not False]
    node_hosts += [
        h for h in groups.get("all", []) if str(hostvars[h].get("node_exporter_enabled", "")).lower() == "true"
    ]
    wanted = [dict(c) for c in components]
    wanted.append(
        {
            "job": "node_exporter",
            "hosts": _unique(node_hosts),
            "port": settings.get("node_exporter_port", 9100),
            "port_var": "node_exporter_port",
            "metrics_path": "/metrics",
            "scheme": settings.get("node_exporter_scheme") or settings.get("scheme", "http"),
        }
    )
    for component in wanted:
        if "job" not in component or "port" not in component:
            raise AnsibleFilterError(f"prometheus_scrape_components entries need job and port; got {component}")
        hosts = component.get("hosts")
        if hosts is None:
            hosts = _unique(groups.get(component.get("group", component["job"]), []))
        hosts = _not_skipped(hosts, hostvars, component["job"])
        if not hosts:
            continue
        job: dict[str, Any] = {
            "job_name": component["job"],
            "scheme": component.get("scheme") or settings.get("scheme", "http"),
            "metrics_path": component.get("metrics_path", "/metrics"),
        }
        endpoints = (settings.get("endpoints") or {}).get(component["job"])
        if endpoints:
            schemes = {urlsplit(endpoints[h]).scheme for h in hosts}
            if len(schemes) != 1:
                raise AnsibleFilterError(
                    f"job {component['job']}: its hosts serve with different schemes ({', '.join(sorted(schemes))});"
                    " switch the production profile on or off for the whole group"
                )
            job["scheme"] = schemes.pop()
            job["static_configs"] = [
                {"targets": [urlsplit(endpoints[h]).netloc], "labels": {"instance": h}} for h in hosts
            ]
        else:
            job["static_configs"] = _static_configs(hosts, hostvars, component.get("port_var", ""), component["port"])
        if job["scheme"] == "https" and settings.get("ca_file"):
            job["tls_config"] = {"ca_file": settings["ca_file"]}
        # Credentials travel only over https, never in clear text.
        if settings.get("username") and job["scheme"] == "https":
            job["basic_auth"] = {"username": settings["username"], "password_file": settings["password_file"]}
        jobs.append(job)
    return jobs


def prometheus_alertmanager_configs(urls: Iterable[str], settings: Mapping[str, Any]) -> list[dict]:
    """``alerting.alertmanagers`` for the Alertmanagers at ``urls`` (from the monitoring_endpoint lookup).

    Every Alertmanager is a target of its own: Prometheus sends each alert to all of them, which
    is what an Alertmanager cluster expects (it deduplicates the notifications). ``settings``
    carries ca_file, username and password_file; credentials travel only over https.
    """
    parts = [urlsplit(str(url)) for url in urls]
    if not parts:
        return []
    kinds = {(p.scheme, p.path.rstrip("/")) for p in parts}
    if len(kinds) != 1:
        raise AnsibleFilterError(
            "the Alertmanagers serve with different schemes or path prefixes "
            f"({', '.join(sorted(scheme + '://...' + (path or '/') for scheme, path in kinds))});"
            " switch the production profile on or off"
            " for the whole group, or set prometheus_alertmanagers"
        )
    scheme, path = kinds.pop()
    entry: dict[str, Any] = {"scheme": scheme, "api_version": "v2"}
    if path:
        entry["path_prefix"] = path
    entry["static_configs"] = [{"targets": list(dict.fromkeys(p.netloc for p in parts))}]
    if scheme == "https" and settings.get("ca_file"):
        entry["tls_config"] = {"ca_file": settings["ca_file"]}
    if scheme == "https" and settings.get("username"):
        entry["basic_auth"] = {"username": settings["username"], "password_file": settings["password_file"]}
    return [entry]


def prometheus_remote_write_configs(urls: Mapping[str, str], settings: Mapping[str, Any]) -> list[dict]:
    """``remote_write`` entries, one per receiver: ``urls`` maps a queue name to the write URL.

    ``settings`` carries queue_config, headers, ca_file, username and password_file. Credentials
    travel only over https, as for scrapes. The queue is named after the receiver, so that
    prometheus_remote_storage_* series tell the receivers apart (label remote_name).
    """
    entries = []
    for name, url in urls.items():
        entry: dict[str, Any] = {"name": str(name), "url": str(url)}
        if settings.get("headers"):
            entry["headers"] = {str(k): str(v) for k, v in dict(settings["headers"]).items()}
        https = urlsplit(str(url)).scheme == "https"
        if https and settings.get("ca_file"):
            entry["tls_config"] = {"ca_file": settings["ca_file"]}
        if https and settings.get("username"):
            entry["basic_auth"] = {"username": settings["username"], "password_file": settings["password_file"]}
        if settings.get("queue_config"):
            entry["queue_config"] = dict(settings["queue_config"])
        entries.append(entry)
    return entries


def prometheus_probe_jobs(
    probes: list[Mapping[str, Any]], exporter_url: str, settings: Mapping[str, Any]
) -> list[dict]:
    """scrape_configs entries that probe URLs through a blackbox exporter.

    ``probes``: [{job, module, targets: {host: URL}}] (render_vars.yml fills ``targets`` from
    the monitoring_endpoint lookup; a probe without targets gives no job). ``exporter_url``:
    the blackbox exporter Prometheus asks (its scheme, address and port). Each target keeps
    ``instance`` = the inventory host name of the probed component (the stack's convention) and
    gets ``target`` = the probed URL; the relabelling moves the URL into ``__param_target`` and
    points ``__address__`` at the exporter. Credentials and the CA follow the rules of the
    derived jobs: basic auth only over https.
    """
    if not exporter_url or not probes:
        return []
    exporter = urlsplit(str(exporter_url))
    if exporter.scheme not in ("http", "https") or not exporter.netloc:
        raise AnsibleFilterError(f"blackbox exporter URL {exporter_url!r} is not http(s)://host:port")
    jobs: list[dict] = []
    for probe in probes:
        if "job" not in probe or "module" not in probe:
            raise AnsibleFilterError(f"prometheus_blackbox_probes entries need job and module; got {dict(probe)}")
        targets = probe.get("targets") or {}
        if not targets:
            continue
        job: dict[str, Any] = {
            "job_name": probe["job"],
            "scheme": exporter.scheme,
            "metrics_path": "/probe",
            "params": {"module": [str(probe["module"])]},
            "static_configs": [
                {"targets": [url], "labels": {"instance": host, "target": url}} for host, url in targets.items()
            ],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"target_label": "__address__", "replacement": exporter.netloc},
            ],
        }
        if exporter.scheme == "https" and settings.get("ca_file"):
            job["tls_config"] = {"ca_file": settings["ca_file"]}
        if settings.get("username") and exporter.scheme == "https":
            job["basic_auth"] = {"username": settings["username"], "password_file": settings["password_file"]}
        jobs.append(job)
    return jobs


# Top-level key of prometheus.yml -> the role variables that produce it.
_SECTION_VARIABLES = {
    "global": (
        "prometheus_scrape_interval, prometheus_scrape_timeout, prometheus_evaluation_interval,"
        " prometheus_external_labels"
    ),
    "alerting": "prometheus_alertmanagers (or the alertmanager group's hosts), prometheus_replica_label",
    "remote_write": "prometheus_remote_write",
    "rule_files": "prometheus_extra_rule_files",
}


def prometheus_config_blame(stderr: str, rendered: str, extra_jobs: Iterable[str]) -> str:
    """The role variable(s) behind the setting promtool refused in ``rendered`` prometheus.yml.

    promtool names a line ("line 36: field scrape_intervall not found") or a job ("scrape timeout
    greater than scrape interval for scrape config with job name \"x\""); a job comes from
    prometheus_extra_scrape_configs or from the derived jobs (prometheus_scrape_components).
    """
    extra = set(extra_jobs)
    lines = rendered.splitlines()
    job = None
    section = None
    match = re.search(r"line (\d+)", stderr)
    if match:
        number = min(int(match.group(1)), len(lines))
        for line in lines[:number]:
            top = re.match(r"^([a-z_]+):", line)
            if top:
                section, job = top.group(1), None
            named = re.match(r"^\s*-?\s*job_name:\s*[\"']?([^\"'\s]+)", line)
            if named:
                job = named.group(1)
    named = re.search(r"job[ _]name[\s:=]*\\?[\"']?([A-Za-z0-9_.:-]+)", stderr)
    if named:
        section, job = "scrape_configs", named.group(1)
    if section == "scrape_configs" and job:
        source = "prometheus_extra_scrape_configs" if job in extra else "prometheus_scrape_components"
        return f"{source} (job {job})"
    return _SECTION_VARIABLES.get(section or "", "the role's variables (promtool names no line or job)")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "prometheus_alertmanager_configs": prometheus_alertmanager_configs,
            "prometheus_config_blame": prometheus_config_blame,
            "prometheus_probe_jobs": prometheus_probe_jobs,
            "prometheus_remote_write_configs": prometheus_remote_write_configs,
            # Probe targets and blackbox exporters, less the hosts where the component was skipped.
            "prometheus_serving_hosts": _not_skipped,
            "prometheus_scrape_jobs": prometheus_scrape_jobs,
        }
