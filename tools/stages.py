#!/usr/bin/env python3
"""Run named stages (``name=command``) in order, stop at the first failure, print timings."""

from __future__ import annotations

import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    timings: list[tuple[str, str, float]] = []
    code = 0
    for spec in argv:
        name, _, command = spec.partition("=")
        print(f"\n===== stage {name}: {command}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, shell=True)
        timings.append((name, "ok" if code == 0 else f"FAILED ({code})", time.monotonic() - started))
        if code:
            break
    print("\nStage timings")
    for name, result, seconds in timings:
        print(f"  {name:<10} {result:<12} {seconds:8.1f} s")
    print(f"  {'total':<10} {'':<12} {sum(t[2] for t in timings):8.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
