#!/usr/bin/env python3
"""Run Molecule scenarios one after the other and print a summary table.

A scenario that needs upstream release artifacts lists their file names in
``molecule/<name>/requires-artifacts.txt``. When ``MONITORING_ARTIFACTS_DIR`` (default:
``artifacts/`` in the checkout) lacks one of them the scenario is reported SKIPPED with the
missing names, or FAILED when ``MONITORING_REQUIRE_ARTIFACTS=1``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Dependency order: the component scenarios first, the whole stack last.
ORDER = ["backend", "prometheus", "loki", "promtail", "grafana", "alerting", "scale", "containers", "stack"]


@dataclass
class Outcome:
    scenario: str
    result: str
    seconds: float
    detail: str = ""
    # For a failed run: where it failed (printed under the table).
    failure: str = ""


def artifacts_dir() -> Path:
    configured = os.environ.get("MONITORING_ARTIFACTS_DIR", "")
    return Path(configured) if configured else REPO / "artifacts"


def missing_artifacts(scenario: str) -> list[str]:
    wanted = REPO / "molecule" / scenario / "requires-artifacts.txt"
    if not wanted.is_file():
        return []
    names = [line.strip() for line in wanted.read_text().splitlines()]
    return [name for name in names if name and not name.startswith("#") and not (artifacts_dir() / name).is_file()]


def passed_or_partial(scenario: str, seconds: float, report: Path) -> Outcome:
    """PASSED, or SKIPPED naming what was not verified when the scenario reported skipped checks."""
    reasons = []
    if report.is_file():
        for line in report.read_text().splitlines():
            reason = line.removeprefix("SKIPPED:").strip()
            if reason and reason not in reasons:
                reasons.append(reason)
    if not reasons:
        return Outcome(scenario, "PASSED", seconds)
    if os.environ.get("MONITORING_REQUIRE_ARTIFACTS") == "1":
        return Outcome(
            scenario, "FAILED", seconds, "not verified: " + "; ".join(reasons) + " (MONITORING_REQUIRE_ARTIFACTS=1)"
        )
    return Outcome(scenario, "SKIPPED", seconds, "ran, but not verified: " + "; ".join(reasons))


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Molecule frames the output of each step's playbook with this bar.
FRAME = re.compile(r"^\s*\u2502 ?")


def failure_summary(log_text: str, limit: int = 900) -> str:
    """The step that failed, and the task, host and message of its last unignored failure, in one line.

    The summary table is the end of what CI shows; the failing task must be readable there, not only in the log.
    """
    lines = [FRAME.sub("", ANSI.sub("", line)).rstrip() for line in log_text.splitlines()]
    step_at = next((i for i in range(len(lines) - 1, -1, -1) if "Executed: Failed" in lines[i]), len(lines))
    step = re.search(r"\u279c (\S+): Executed: Failed", lines[step_at]) if step_at < len(lines) else None
    fatal_at = None
    for i in range(step_at - 1, -1, -1):
        if re.search(r"^\s*(fatal|failed): \[", lines[i]):
            following = " ".join(lines[i : i + 40])
            if "...ignoring" not in following:
                fatal_at = i
                break
    if fatal_at is None:
        return f"in {step.group(1)}" if step else ""
    task = next((lines[i].strip() for i in range(fatal_at, -1, -1) if lines[i].lstrip().startswith("TASK [")), "")
    task = re.sub(r"\s*\*+$", "", task)
    message = []
    for line in lines[fatal_at : fatal_at + 60]:
        if line.strip() in ("", "}") and message:
            break
        message.append(line.strip())
    text = " ".join(message)
    where = f"in {step.group(1)}: " if step else ""
    summary = re.sub(r"\s+", " ", f"{where}{task} {text}")
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


def discover() -> list[str]:
    found = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
    return [s for s in ORDER if s in found] + [s for s in found if s not in ORDER]


def run(scenario: str, log_dir: Path) -> Outcome:
    missing = missing_artifacts(scenario)
    if missing:
        detail = f"needs {', '.join(missing)} in {artifacts_dir()}"
        if os.environ.get("MONITORING_REQUIRE_ARTIFACTS") == "1":
            return Outcome(scenario, "FAILED", 0.0, detail + " (MONITORING_REQUIRE_ARTIFACTS=1)")
        return Outcome(scenario, "SKIPPED", 0.0, detail)
    log = log_dir / f"molecule-{scenario}.log"
    # Checks a scenario could not make are written here (molecule/shared/tasks/report_skipped.yml).
    report = log_dir / f"molecule-{scenario}.skipped"
    report.unlink(missing_ok=True)
    print(f"==> molecule test -s {scenario}  (log: {log.relative_to(REPO)})", flush=True)
    started = time.monotonic()
    env = {**os.environ, "MONITORING_SCENARIO_REPORT": str(report)}
    with log.open("w") as out:
        code = subprocess.call(
            ["molecule", "test", "-s", scenario], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    seconds = time.monotonic() - started
    if code == 0:
        return passed_or_partial(scenario, seconds, report)
    text = log.read_text(errors="replace")
    print("\n".join(text.splitlines()[-120:]), flush=True)
    return Outcome(scenario, "FAILED", seconds, f"exit {code}, see {log.relative_to(REPO)}", failure_summary(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all, in dependency order)")
    args = parser.parse_args(argv)
    log_dir = REPO / ".cache" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    outcomes = [run(s, log_dir) for s in (args.scenarios or discover())]

    print("\nMolecule scenarios")
    print(f"{'scenario':<12} {'result':<8} {'seconds':>8}  detail")
    for o in outcomes:
        print(f"{o.scenario:<12} {o.result:<8} {o.seconds:>8.1f}  {o.detail}")
        if o.result == "SKIPPED":
            print(f"SKIPPED: molecule scenario {o.scenario}: {o.detail}", file=sys.stderr)
    for o in outcomes:
        if o.failure:
            print(f"FAILED: molecule scenario {o.scenario} {o.failure}")
    count = {r: sum(o.result == r for o in outcomes) for r in ("PASSED", "FAILED", "SKIPPED")}
    print(f"scenarios: {count['PASSED']} passed, {count['FAILED']} failed, {count['SKIPPED']} skipped")
    return 1 if count["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
