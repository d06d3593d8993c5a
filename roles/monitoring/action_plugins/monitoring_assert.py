"""``assert`` that can collect instead of fail: the checks of every role's preflight.

Same arguments as ``ansible.builtin.assert`` (``that``, ``fail_msg``/``msg``, ``quiet``). Used
alone (a role's own run) it fails like ``assert``. Under the validation phase of the stack
(``playbooks/validate.yml`` sets ``__monitoring_validate_collect``) it records the message,
prefixed with the host, in the host fact ``__monitoring_problems`` and carries on, so that one
run reports every problem of every host, one line each, before any host is changed.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

PROBLEMS_FACT = "__monitoring_problems"
COLLECT_VAR = "__monitoring_validate_collect"


def one_line(text: Any) -> str:
    if isinstance(text, list | tuple):
        text = " ".join(str(part) for part in text)
    return " ".join(str(text).split())


class ActionModule(ActionBase):
    """Evaluate every condition; fail, or record the message under the validation phase."""

    _requires_connection = False

    @classmethod
    def finalize_task_arg(cls, name: str, value: Any, templar: Any, context: Any) -> Any:
        # `that` holds bare expressions (evaluated below, as assert does); the rest is templated.
        if name == "that":
            return value
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        that = args.get("that", [])
        conditions = [that] if isinstance(that, str) else list(that)
        message = one_line(args.get("fail_msg", args.get("msg", "Assertion failed")))
        failed = [c for c in conditions if not self._templar.evaluate_conditional(conditional=c)]
        result["changed"] = False
        if not failed:
            result["msg"] = "All assertions passed"
            return result
        host = task_vars.get("inventory_hostname", "?")
        if boolean(task_vars.get(COLLECT_VAR, False), strict=False):
            known = list(task_vars.get(PROBLEMS_FACT) or [])
            line = f"{host}: {message}"
            if line not in known:
                known.append(line)
            result["ansible_facts"] = {PROBLEMS_FACT: known}
            result["msg"] = f"recorded: {line}"
            return result
        result["failed"] = True
        result["assertion"] = failed[0]
        result["msg"] = message
        return result
