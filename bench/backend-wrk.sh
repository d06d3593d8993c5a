#!/usr/bin/env bash
# Throughput cost of the backend's instrumentation: wrk against GET /api/v1/health on loopback,
# one gunicorn with BACKEND_METRICS_ENABLED=true and one with =false (same workers/threads,
# both logging as in production), measured in interleaved rounds (the order alternates each
# round). Prints every round, the median instrumented/bare ratio and the p99 latencies.
#
#   bench/backend-wrk.sh                      # 5 rounds x 10 s each side (~2 min)
#   ROUNDS=3 DURATION=5 bench/backend-wrk.sh
#   PYTHON=/tmp/appvenv/bin/python MIN_RATIO=0.95 bench/backend-wrk.sh   # fail below 0.95
#
# Needs: wrk, and a Python with clientforge-backend installed (PYTHON, default: .venv/bin/python
# if present, else python3). Traffic goes to 127.0.0.1 only; every run is bounded in time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10}"        # seconds per measured run
WARMUP="${WARMUP:-2}"             # seconds of unmeasured load before each run
WORKERS="${WORKERS:-2}"
THREADS="${THREADS:-4}"
WRK_THREADS="${WRK_THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-16}"
MIN_RATIO="${MIN_RATIO:-}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi

command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
"$PYTHON" -c 'import clientforge_backend, gunicorn' 2>/dev/null \
  || { echo "$PYTHON cannot import clientforge_backend/gunicorn (pip install ./app)" >&2; exit 2; }

work="$(mktemp -d /tmp/backend-wrk.XXXXXX)"
# prometheus_client's multiprocess files are mmap'd: keep them on tmpfs, as in production.
shm="$(mktemp -d /dev/shm/backend-wrk.XXXXXX 2>/dev/null || mktemp -d /tmp/backend-wrk-shm.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$work" "$shm"
}
trap cleanup EXIT INT TERM

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME METRICS_ENABLED VAR: starts gunicorn, stores its port in VAR
start_server() {
  local name="$1" metrics="$2" var="$3" port
  port="$(free_port)"
  mkdir -p "$work/$name"
  env -u PROMETHEUS_MULTIPROC_DIR \
    BACKEND_BIND="127.0.0.1:$port" BACKEND_WORKERS="$WORKERS" BACKEND_THREADS="$THREADS" \
    BACKEND_METRICS_ENABLED="$metrics" BACKEND_ENVIRONMENT=production \
    BACKEND_LOG_DIR="$work/$name/logs" BACKEND_METRICS_DIR="$shm/$name-metrics" \
    "$PYTHON" -m gunicorn -c python:clientforge_backend.gunicorn_conf \
    "clientforge_backend:create_app()" >"$work/$name/gunicorn.log" 2>&1 &
  pids+=("$!")
  printf -v "${var}_pid" '%s' "$!"
  for _ in $(seq 1 100); do
    if "$PYTHON" - "$port" <<'EOF' 2>/dev/null; then printf -v "$var" '%s' "$port"; return 0; fi
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=1)
c.request("GET", "/api/v1/health")
sys.exit(0 if c.getresponse().status == 200 else 1)
EOF
    sleep 0.1
  done
  echo "server $name did not start:" >&2; cat "$work/$name/gunicorn.log" >&2; return 1
}

on_port="" off_port="" on_port_pid="" off_port_pid=""
start_server on true on_port
start_server off false off_port
sleep 1  # let every worker finish booting
echo "backend wrk bench: $ROUNDS rounds x ${DURATION}s, gunicorn workers=$WORKERS threads=$THREADS," \
  "wrk -t$WRK_THREADS -c$CONNECTIONS, cores=$(nproc)"

results="$work/results.tsv"
stats="$here/backend_wrk_stats.py"
run_wrk() {  # run_wrk MODE PORT MASTER_PID ROUND
  local mode="$1" port="$2" master="$3" round="$4" out cpu0 cpu1
  timeout $((WARMUP + 10)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
    "http://127.0.0.1:$port/api/v1/health" >/dev/null
  cpu0="$("$PYTHON" "$stats" cpu "$master")"
  out="$(timeout $((DURATION + 20)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    --latency "http://127.0.0.1:$port/api/v1/health")"
  cpu1="$("$PYTHON" "$stats" cpu "$master")"
  printf '%s\n' "$out" \
    | "$PYTHON" "$stats" parse "$mode" "$round" "$(awk "BEGIN{print $cpu1 - $cpu0}")" >>"$results"
  tail -n 1 "$results" | awk -F'\t' '{printf "  round %s  metrics=%-3s  %9s req/s  p99 %7s ms  server CPU %6s us/req%s\n", $2, $1, $3, $4, $7, ($5 > 0 ? "  NON-2xx: " $5 : "")}'
}

for round in $(seq 1 "$ROUNDS"); do
  if (( round % 2 )); then
    run_wrk on "$on_port" "$on_port_pid" "$round"; run_wrk off "$off_port" "$off_port_pid" "$round"
  else
    run_wrk off "$off_port" "$off_port_pid" "$round"; run_wrk on "$on_port" "$on_port_pid" "$round"
  fi
done

"$PYTHON" "$stats" summary "$results" "$MIN_RATIO"
