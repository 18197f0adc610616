#!/usr/bin/env bash
# Stop what slurm/local/up.sh started under DIR, and nothing else: the jobs' step processes (slurmstepd
# and the job processes under it, which outlive slurmd), then the daemons, by their PID files.
set -uo pipefail
DIR=${1:?usage: slurm/local/down.sh DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=slurm/local/common.sh
. "$HERE/common.sh"
CONF=$DIR/etc/slurm.conf

# this cluster's step daemons: slurmstepd processes working in DIR/log (slurmd's folder, which they
# inherit), with every process under them
steps() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] && [ "$(readlink "$p/cwd" 2>/dev/null)" = "$DIR/log" ] && echo "${p#/proc/}"
  done
}
with_children() {
  local all=" $* " added=1 pid parent
  local tree
  tree=$(awk '/^PPid:/ { split(FILENAME, part, "/"); print part[3], $2 }' /proc/[0-9]*/status 2>/dev/null)
  while [ "$added" -eq 1 ]; do
    added=0
    while read -r pid parent; do
      case "$all" in *" $parent "*) case "$all" in *" $pid "*) ;; *) all="$all$pid " added=1 ;; esac ;; esac
    done <<<"$tree"
  done
  echo "$all"
}

# the jobs first, while the controller can still have slurmd end their steps
if alive "$DIR/run/slurmctld.pid" && [ -f "$CONF" ]; then
  SLURM_CONF=$CONF timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1
  for _ in $(seq 1 30); do [ -z "$(steps)" ] && break; sleep 0.5; done
fi
left=$(steps)
for name in slurmd slurmctld munged; do
  stop_pidfile "$DIR/run/$name.pid"
done
if [ -n "$left" ]; then  # steps slurmd could not end: they and the job processes under them
  pids=$(with_children $left)
  kill $pids 2>/dev/null
  for _ in $(seq 1 50); do
    alive_any=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive_any=1; done
    [ "$alive_any" -eq 0 ] && break
    sleep 0.1
  done
  kill -9 $pids 2>/dev/null
fi
exit 0
