#!/usr/bin/env bash
# Stop the daemons slurm/local/up.sh started under DIR, by their PID files; nothing else.
set -uo pipefail
DIR=${1:?usage: slurm/local/down.sh DIR}
[ -d "$DIR" ] || exit 0
for name in slurmd slurmctld munged; do
  pidfile="$DIR/run/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
done
