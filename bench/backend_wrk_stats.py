"""Helper for backend-wrk.sh: parse wrk output and summarise the interleaved rounds.

    python backend_wrk_stats.py cpu MASTER_PID        # CPU seconds of gunicorn master+workers
    wrk ... --latency URL | python backend_wrk_stats.py parse MODE ROUND CPU_SECONDS >> results.tsv
    python backend_wrk_stats.py summary results.tsv [MIN_RATIO]

Throughput on a shared 2-core machine is noisy, so next to req/s the summary also reports the
CPU time the server processes spent per request (from /proc), which other load disturbs less.
"""

from __future__ import annotations

import os
import re
import statistics
import sys

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def cpu_seconds(master: int) -> float:
    """utime+stime of ``master`` and its direct children (the gunicorn workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == master or int(fields[1]) == master:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def parse(mode: str, round_no: str, out: str, cpu: float) -> str:
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99_match = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if rps_match is None or p99_match is None:
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    p99 = float(p99_match.group(1)) * UNITS_MS[p99_match.group(2)]
    fields = [
        mode,
        round_no,
        f"{float(rps_match.group(1)):.1f}",
        f"{p99:.3f}",
        errors.group(1) if errors else "0",
        sock.group(1).strip() if sock else "",
        f"{cpu / (float(rps_match.group(1)) * float(_duration(out))) * 1e6:.1f}",
    ]
    return "\t".join(fields)


def _duration(out: str) -> float:
    match = re.search(r"requests in ([\d.]+)(ms|s|m),", out)
    if match is None:
        raise SystemExit(f"cannot parse wrk duration:\n{out}")
    return float(match.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(2)]


def summary(path: str, min_ratio: str) -> int:
    by: dict[str, dict[int, tuple[float, float, int, str, float]]] = {"on": {}, "off": {}}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            mode, rnd, rps, p99, bad, sock, cpu_us = line.rstrip("\n").split("\t")
            by[mode][int(rnd)] = (float(rps), float(p99), int(bad), sock, float(cpu_us))
    rounds = sorted(set(by["on"]) & set(by["off"]))
    ratios = [by["on"][r][0] / by["off"][r][0] for r in rounds]

    def med(mode: str, index: int) -> float:
        return statistics.median(v[index] for v in by[mode].values())  # type: ignore[misc]

    ratio = statistics.median(ratios)
    print("per-round ratio instrumented/bare: " + " ".join(f"{x:.3f}" for x in ratios))
    print(f"median req/s   metrics on: {med('on', 0):9.1f}   metrics off: {med('off', 0):9.1f}")
    print(f"median p99 ms  metrics on: {med('on', 1):9.2f}   metrics off: {med('off', 1):9.2f}")
    cpu_ratios = [by["off"][r][4] / by["on"][r][4] for r in rounds]
    on_cpu, off_cpu = med("on", 4), med("off", 4)
    print(f"median server CPU us/req  metrics on: {on_cpu:9.1f}   metrics off: {off_cpu:9.1f}")
    cpu_ratio = statistics.median(cpu_ratios)
    print(f"median CPU-efficiency ratio bare/instrumented (less noise-prone): {cpu_ratio:.3f}")
    print(f"MEDIAN RATIO instrumented/bare (req/s): {ratio:.3f}")
    bad = sum(v[2] for m in by.values() for v in m.values())
    socket_errors = [v[3] for m in by.values() for v in m.values() if v[3]]
    if socket_errors:
        print("socket errors: " + "; ".join(socket_errors))
    if bad:
        print(f"FAIL: {bad} non-2xx responses")
        return 1
    if min_ratio and ratio < float(min_ratio):
        print(f"FAIL: median ratio {ratio:.3f} < {min_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "cpu":
        print(f"{cpu_seconds(int(sys.argv[2])):.2f}")
    elif sys.argv[1] == "parse":
        print(parse(sys.argv[2], sys.argv[3], sys.stdin.read(), float(sys.argv[4])))
    elif sys.argv[1] == "summary":
        sys.exit(summary(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
    else:
        raise SystemExit(__doc__)
