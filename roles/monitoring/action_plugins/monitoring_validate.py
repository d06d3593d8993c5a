"""The first stage of the stack's validation phase, on the controller (no host is contacted).

For one inventory host it checks, against the roles' own ``meta/argument_specs.yml`` (every
entry point) and with the same type rules Ansible applies to role arguments:

* every declared variable that applies to the host has the declared type and is one of the
  declared choices (a boolean is a boolean: ``maybe`` is refused);
* every variable with a stack prefix (``backend_``, ``prometheus_``, ``monitoring_``...) is
  declared by some role (a typo is refused with the closest declared name), unless the
  operator lists it in ``monitoring_validate_ignore`` (names or shell patterns);
* the components on the host do not share a port.

With ``scope: stack`` it checks the inventory as a whole instead: a stack group that is empty
while a group one edit away from its name has hosts (``backends:``), and a consumer group
without its producer (promtail without loki, grafana without prometheus).

Problems are recorded one line each (host, variable, value, what is allowed) in the host fact
``__monitoring_problems`` (``monitoring_assert`` adds the preflight rules' there too). With
``scope: report`` it gathers them from every host, names the hosts that share a problem in one
line, and fails the run when there is any: no host has been changed at that point.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from functools import cache
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

ROLES_DIR = Path(__file__).resolve().parents[2]
PROBLEMS_FACT = "__monitoring_problems"
# Inventory group -> the role that group runs.
GROUP_ROLES = {
    "backend": "backend",
    "prometheus": "prometheus",
    # The central store of the Prometheus replicas (a remote-write receiver).
    "metrics_store": "prometheus",
    "loki": "loki",
    "promtail": "promtail",
    "grafana": "grafana",
    "alertmanager": "alertmanager",
    "node_exporter": "node_exporter",
    "blackbox_exporter": "blackbox_exporter",
    "docker_engine": "docker_engine",
}
# Roles that apply to every host (the last two only under the production profile).
COMMON_ROLES = ("monitoring",)
HARDENING_ROLES = ("monitoring_tls", "monitoring_firewall")
# A consumer group needs its producer group.
CONSUMERS = {"promtail": "loki", "grafana": "prometheus"}
# Variables with these prefixes belong to the stack: an undeclared one is a typo.
STACK_PREFIXES = (
    "backend_",
    "prometheus_",
    "loki_",
    "promtail_",
    "grafana_",
    "monitoring_",
    "node_exporter_",
    "alertmanager_",
    "blackbox_",
    "docker_engine_",
)
# Spec keys understood by ArgumentSpecValidator (descriptions are not).
SPEC_KEYS = ("type", "elements", "choices", "required", "no_log", "options", "aliases")


@cache
def stack_roles() -> tuple[str, ...]:
    return tuple(sorted(p.parent.parent.name for p in ROLES_DIR.glob("*/meta/argument_specs.yml")))


def _load_yaml(loader: Any, path: Path) -> Any:
    if not path.is_file():
        return {}
    return loader.load_from_file(str(path), trusted_as_template=True) or {}


def role_options(loader: Any, role: str) -> dict[str, dict[str, Any]]:
    """Every option of every entry point of ``role`` (the first declaration of a name wins)."""
    specs = _load_yaml(loader, ROLES_DIR / role / "meta" / "argument_specs.yml").get("argument_specs", {})
    options: dict[str, dict[str, Any]] = {}
    for entry in specs.values():
        for name, spec in (entry or {}).get("options", {}).items():
            options.setdefault(str(name), dict(spec or {}))
    return options


def role_defaults(loader: Any, role: str) -> dict[str, Any]:
    return dict(_load_yaml(loader, ROLES_DIR / role / "defaults" / "main.yml"))


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest(name: str, candidates: list[str]) -> str | None:
    """The declared name an operator most likely meant (difflib ratio, then edit distance)."""
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
    if matches:
        return matches[0]
    near = sorted((edit_distance(name, c), c) for c in candidates if abs(len(c) - len(name)) <= 2)
    return near[0][1] if near and near[0][0] <= 2 else None


def describe(spec: dict[str, Any]) -> str:
    """What a declared option allows, in words."""
    kind = spec.get("type", "str")
    words = {
        "bool": "a boolean (true or false)",
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "path": "a path",
        "dict": "a mapping",
        "raw": "any value",
    }
    text = f"a list of {spec.get('elements', 'str')}" if kind == "list" else words.get(kind, kind)
    if spec.get("choices"):
        text = "one of " + ", ".join(str(c) for c in spec["choices"])
    return text


def show(value: Any, secret: bool) -> str:
    if secret:
        return "(secret, not shown)"
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_option(name: str, spec: dict[str, Any], value: Any) -> str | None:
    """One-line problem for ``name`` = ``value`` against its spec, or None."""
    validator = ArgumentSpecValidator({name: {k: spec[k] for k in SPEC_KEYS if k in spec}})
    outcome = validator.validate({name: value})
    if not outcome.error_messages:
        return None
    return f"{name} = {show(value, bool(spec.get('no_log')))}: expected {describe(spec)}"


def matches_any(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, str(p)) for p in patterns)


class ActionModule(ActionBase):
    """Validate one host's variables (or, with scope: stack, the inventory) without contacting it."""

    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        scope = self._task.args.get("scope", "host")
        if scope == "report":
            return self.report(task_vars, result)
        problems = self.check_stack(task_vars) if scope == "stack" else self.check_host(task_vars)
        host = task_vars.get("inventory_hostname", "?")
        lines = list(task_vars.get(PROBLEMS_FACT) or [])
        for problem in problems:
            line = f"{host}: {problem}" if scope != "stack" else problem
            if line not in lines:
                lines.append(line)
        result.update(changed=False, ansible_facts={PROBLEMS_FACT: lines}, problems=problems)
        result["msg"] = f"{len(problems)} problem(s)" if problems else "valid"
        return result

    # -- one host -------------------------------------------------------------------------
    def applicable_roles(self, task_vars: dict[str, Any], hardening: bool) -> list[str]:
        groups = task_vars.get("group_names", [])
        roles = list(COMMON_ROLES) + [role for group, role in GROUP_ROLES.items() if group in groups]
        if hardening:
            roles += list(HARDENING_ROLES)
        # Two groups may run one role (prometheus, metrics_store): its checks run once.
        return list(dict.fromkeys(roles))

    def templated(self, templar: Any, variables: dict[str, Any], name: str) -> tuple[Any, str | None]:
        try:
            return templar.template(variables[name]), None
        except AnsibleError as exc:
            return None, f"{name} cannot be evaluated: {' '.join(str(exc.message).split())}"

    def check_host(self, task_vars: dict[str, Any]) -> list[str]:
        loader = self._loader
        declared: dict[str, dict[str, Any]] = {}
        defaults: dict[str, Any] = {}
        for role in stack_roles():
            for name, spec in role_options(loader, role).items():
                declared.setdefault(name, spec)
            for name, value in role_defaults(loader, role).items():
                defaults.setdefault(name, value)
        # Role defaults under the inventory, extra vars and play vars, as Ansible layers them.
        variables = {**defaults, **task_vars}
        templar = self._templar.copy_with_new_env(available_variables=variables)
        problems: list[str] = []

        hardening, _ = self.templated(templar, variables, "monitoring_hardening")
        roles = self.applicable_roles(task_vars, boolean(hardening, strict=False))

        # Types and choices of every variable of the roles that run here.
        checked: set[str] = set()
        for role in roles:
            variables["role_path"] = str(ROLES_DIR / role)
            for name, spec in role_options(loader, role).items():
                if name in checked or name not in variables:
                    continue
                checked.add(name)
                value, error = self.templated(templar, variables, name)
                problem = error or check_option(name, spec, value)
                if problem:
                    problems.append(problem)

        # Typos: stack-prefixed names that no role declares.
        ignore = variables.get("monitoring_validate_ignore") or []
        ignore = templar.template(ignore) if isinstance(ignore, str) else ignore
        names = sorted(declared)
        for name in sorted(task_vars):
            if name.startswith("_") or not name.startswith(STACK_PREFIXES) or name in declared:
                continue
            if matches_any(name, list(ignore)):
                continue
            guess = closest(name, names)
            hint = f"did you mean `{guess}`?" if guess else "no role declares it"
            problems.append(
                f"{name} is not a variable of the stack: {hint} (list your own variables in monitoring_validate_ignore)"
            )

        problems += self.port_clashes(templar, variables, roles)
        return problems

    def port_clashes(self, templar: Any, variables: dict[str, Any], roles: list[str]) -> list[str]:
        """Two components of this host on one port."""
        ports: dict[str, str] = {
            "backend": "backend_port",
            "loki": "loki_http_listen_port",
            "promtail": "promtail_http_listen_port",
            "grafana": "grafana_http_port",
            "prometheus": "prometheus_port",
            "alertmanager": "alertmanager_port",
            "node_exporter": "node_exporter_port",
            "blackbox_exporter": "blackbox_exporter_port",
        }
        extra = {"loki": ["loki_grpc_listen_port"], "alertmanager": ["alertmanager_cluster_port"]}
        used: dict[int, str] = {}
        problems = []
        for role in roles:
            for name in [ports[role]] + extra.get(role, []) if role in ports else []:
                if name not in variables:
                    continue
                value, error = self.templated(templar, variables, name)
                try:
                    port = int(value)
                except (TypeError, ValueError):
                    continue  # reported by the type check
                if port in used:
                    problems.append(
                        f"{name} = {port}: {used[port]} already uses port {port} on this host;"
                        " give one of them another port"
                    )
                else:
                    used[port] = name
        return problems

    # -- the inventory as a whole --------------------------------------------------------
    def check_stack(self, task_vars: dict[str, Any]) -> list[str]:
        groups: dict[str, list[str]] = task_vars.get("groups", {})
        problems = []
        for name, hosts in sorted(groups.items()):
            if name in GROUP_ROLES or name in ("all", "ungrouped") or not hosts:
                continue
            for stack_group in GROUP_ROLES:
                if groups.get(stack_group) or edit_distance(name, stack_group) > 1:
                    continue
                problems.append(
                    f"inventory group `{name}` has hosts but the stack group `{stack_group}` has none:"
                    f" did you mean `{stack_group}`?"
                )
        # One Prometheus per host: a replica that is also the central store would write to itself.
        for host in sorted(set(groups.get("prometheus", [])) & set(groups.get("metrics_store", []))):
            problems.append(
                f"host {host} is in both `prometheus` and `metrics_store`: a host is either a Prometheus replica"
                " or the central store its replicas remote_write to; put it in one of the two groups"
            )
        for consumer, producer in CONSUMERS.items():
            if groups.get(consumer) and not groups.get(producer):
                problems.append(
                    f"inventory group `{consumer}` has hosts ({', '.join(groups[consumer][:3])})"
                    f" but `{producer}` has none: {consumer} needs a {producer} host to talk to"
                )
        return problems

    # -- the report ------------------------------------------------------------------------
    def report(self, task_vars: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        hostvars = task_vars.get("hostvars", {})
        hosts = list(task_vars.get("groups", {}).get("all", [])) + [task_vars.get("inventory_hostname", "localhost")]
        by_problem: dict[str, list[str]] = {}
        for host in dict.fromkeys(hosts):
            lines = hostvars[host].get(PROBLEMS_FACT) if host in hostvars else None
            for line in self._templar.template(lines) or []:
                where, sep, problem = str(line).partition(": ")
                if not sep or where not in hosts:
                    where, problem = "", str(line)
                names = by_problem.setdefault(problem, [])
                if where and where not in names:
                    names.append(where)
        lines = [f"{', '.join(names)}: {problem}" if names else problem for problem, names in by_problem.items()]
        result["changed"] = False
        if not lines:
            result["msg"] = "every input of every host is valid"
            return result
        result["failed"] = True
        result["msg"] = [f"Invalid input, nothing was changed on any host ({len(lines)} problem(s)):", *lines]
        return result
