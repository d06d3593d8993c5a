"""Unit tests of the prometheus role's recording and alerting rules, run by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parent.parent / "roles" / "prometheus" / "files"
PROMTOOL = "/usr/bin/promtool"
RULE_TESTS = sorted((FILES / "tests").glob("*_test.yml"))

pytestmark = pytest.mark.skipif(
    not Path(PROMTOOL).is_file(), reason=f"{PROMTOOL} is absent (apt-get install prometheus provides it)"
)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_every_rule_file_has_unit_tests() -> None:
    tested = {
        line.split("../rules/")[1].strip()
        for t in RULE_TESTS
        for line in t.read_text().splitlines()
        if "../rules/" in line
    }
    assert tested == {p.name for p in (FILES / "rules").glob("*.yml")}


@pytest.mark.parametrize("rule_file", sorted((FILES / "rules").glob("*.yml")), ids=lambda p: p.name)
def test_rule_file_is_valid(rule_file: Path) -> None:
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests are sensitive: raising the 5xx threshold above the tested 10% breaks them."""
    copy = tmp_path / "files"
    shutil.copytree(FILES, copy)
    rules = copy / "rules" / "backend.rules.yml"
    rules.write_text(rules.read_text().replace("> 0.05", "> 0.2"))
    result = promtool("test", "rules", "backend_rules_test.yml", cwd=copy / "tests")
    assert result.returncode != 0
    assert "BackendHighErrorRatio" in result.stdout + result.stderr
