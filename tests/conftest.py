"""Shared fixtures: render a role's templates for a fixture inventory with real Ansible."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
RENDER_PLAYBOOK = REPO / "tests" / "playbooks" / "render.yml"


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_HOME", str(REPO / ".ansible"))
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(REPO / "roles")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


Renderer = Callable[..., dict[str, dict[str, str]]]


@pytest.fixture
def render(tmp_path: Path) -> Renderer:
    """Render ``templates`` of ``role`` for every host of ``inventory`` (a dict in YAML form).

    Returns ``{host: {template_name_without_j2: text}}``. Extra vars override the role
    defaults, like ``-e`` does.
    """

    def _render(
        role: str, templates: list[str], inventory: dict, extra_vars: dict | None = None
    ) -> dict[str, dict[str, str]]:
        inv = tmp_path / "inventory.yml"
        inv.write_text(yaml.safe_dump(inventory))
        out = tmp_path / "out"
        variables = {"render_role": role, "render_templates": templates, "render_out": str(out)}
        variables.update(extra_vars or {})
        result = subprocess.run(
            ["ansible-playbook", "-i", str(inv), str(RENDER_PLAYBOOK), "-e", json.dumps(variables)],
            capture_output=True,
            text=True,
            env=ansible_env(),
            cwd=REPO,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"rendering {role} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
        rendered: dict[str, dict[str, str]] = {}
        for host_dir in out.iterdir():
            rendered[host_dir.name] = {
                str(p.relative_to(host_dir)): p.read_text() for p in host_dir.rglob("*") if p.is_file()
            }
        return rendered

    return _render


def run_playbook(playbook: Path, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ansible-playbook`` with the project's settings and return the completed process."""
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), *args],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO,
        check=False,
    )


PREFLIGHT = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - ansible.builtin.include_role:
        name: ROLE
        tasks_from: preflight.yml
"""
NO_HOSTS = "all:\n  hosts: {}\n"


def run_preflight(tmp_path: Path, role: str, *args: str, inventory: str = NO_HOSTS) -> subprocess.CompletedProcess[str]:
    """Run ``role``'s preflight on localhost in check mode (``args``: extra ansible-playbook arguments)."""
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PREFLIGHT.replace("ROLE", role))
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(inventory)
    return run_playbook(playbook, hosts, "--check", *args)


def offline_exposure(unit_text: str, unit_name: str, tmp_path: Path) -> float:
    """``systemd-analyze security --offline`` exposure of a rendered unit (skips without it)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / unit_name
    path.write_text(unit_text)
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(path)], capture_output=True, text=True, check=False
    )
    match = re.search(rf"Overall exposure level for {re.escape(unit_name)}: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))
