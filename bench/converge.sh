#!/usr/bin/env bash
# Wall time of a first `site.yml` run and of an idempotent re-run on lab hosts, for 1, 3 and
# 6 application hosts (override with: bench/converge.sh 1 3 6). Uses its own container prefix
# and network, so it never touches `make up`'s lab. Prints a table; records nothing by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_HOME="$PWD/.ansible" ANSIBLE_CONFIG="$PWD/ansible.cfg"
export LAB_PREFIX=cf-bench- LAB_NETWORK=cf-bench
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 3 6)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=()

inventory_for() {  # $1 = number of application hosts
  local dir="$work/inventory-$1"
  mkdir -p "$dir"
  cp -r inventory/lab/group_vars inventory/lab/lab_containers.yml "$dir/"
  {
    echo "all:"
    echo "  children:"
    echo "    lab:"
    echo "      children:"
    echo "        monitoring: {hosts: {mon1: }}"
    echo "        applications:"
    echo "          hosts:"
    for i in $(seq 1 "$1"); do echo "            app$i:"; done
    echo "    prometheus: {children: {monitoring: }}"
    echo "    loki: {children: {monitoring: }}"
    echo "    grafana: {children: {monitoring: }}"
    echo "    backend: {children: {applications: }}"
    echo "    promtail: {children: {backend: }}"
  } > "$dir/hosts.yml"
  echo "$dir"
}

timed() {  # prints seconds of "$@", output to a log
  local start end
  start=$(date +%s.%N)
  "$@" > "$work/last.log" 2>&1 || { tail -40 "$work/last.log"; return 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

for n in "${counts[@]}"; do
  inv=$(inventory_for "$n")
  echo "== $n application host(s): creating lab hosts" >&2
  ansible-playbook -i "$inv" playbooks/lab.yml > /dev/null
  first=$(timed ansible-playbook -i "$inv" site.yml)
  again=$(timed ansible-playbook -i "$inv" site.yml)
  changed=$(grep -Eo 'changed=[0-9]+' "$work/last.log" | cut -d= -f2 | paste -sd+ | bc)
  echo "   first run ${first}s, re-run ${again}s (changed on re-run: $changed)" >&2
  results+=("$n $first $again $changed")
  ansible-playbook -i "$inv" playbooks/lab.yml -e lab_state=absent > /dev/null
done

printf '\n%-18s %12s %12s %18s\n' "application hosts" "first run s" "re-run s" "changed on re-run"
for row in "${results[@]}"; do
  read -r n first again changed <<< "$row"
  printf '%-18s %12.1f %12.1f %18s\n' "$n" "$first" "$again" "$changed"
done
