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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Dependency order: the component scenarios first, the whole stack last.
ORDER = ["backend", "prometheus", "loki", "promtail", "grafana", "alerting", "stack"]


@dataclass
class Outcome:
    scenario: str
    result: str
    seconds: float
    detail: str = ""


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
    tail = log.read_text(errors="replace").splitlines()[-120:]
    print("\n".join(tail), flush=True)
    return Outcome(scenario, "FAILED", seconds, f"exit {code}, see {log.relative_to(REPO)}")


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
    count = {r: sum(o.result == r for o in outcomes) for r in ("PASSED", "FAILED", "SKIPPED")}
    print(f"scenarios: {count['PASSED']} passed, {count['FAILED']} failed, {count['SKIPPED']} skipped")
    return 1 if count["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
