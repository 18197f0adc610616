#!/usr/bin/env bash
# Start a one-node SLURM on this machine with every file under DIR (config, munge key and socket,
# state, spool, logs, PIDs) and its own ports, so it never touches a system-wide SLURM or munge.
# Idempotent: a second call finds the daemons alive and only prints the environment.
#   slurm/local/up.sh DIR         then: export SLURM_CONF=DIR/etc/slurm.conf PATH=DIR/bin:$PATH
#   slurm/local/down.sh DIR       stops exactly the daemons this script started, by PID, and the jobs' steps
# Ports: SLURM_LOCAL_PORT (default 16817; slurmd uses the next one). They are checked before anything
# starts: a taken one is named in one line. On any failure this call stops exactly the daemons it started.
set -euo pipefail

DIR=${1:?usage: slurm/local/up.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${SLURM_LOCAL_PORT:-16817}
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}  # for the node to become idle
# shellcheck source=slurm/local/common.sh
. "$HERE/common.sh"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/etc/slurm.conf

# the ports first: another program there (a plain listener, another local cluster) would have slurmd
# wait on, or talk to, a controller that is not ours; a port our own live daemon holds is fine
for daemon_port in "slurmctld $PORT" "slurmd $((PORT + 1))"; do
  read -r daemon port <<<"$daemon_port"
  alive "$DIR/run/$daemon.pid" && continue
  holder=$(port_holder "$port")
  if [ -n "$holder" ]; then
    echo "up.sh: port $port (for $daemon) is taken by $holder; choose free ports with SLURM_LOCAL_PORT=<port> (it uses that port and the next)" >&2
    exit 1
  fi
done

# every daemon this call starts, so that any failure stops exactly those (and none it found running)
STARTED=()
stop_started() {
  local status=$? i
  [ "$status" -eq 0 ] && return 0
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pidfile "${STARTED[i]}"; done
  if [ ${#STARTED[@]} -gt 0 ]; then
    echo "up.sh: stopped the daemons this call started: $(printf '%s ' "${STARTED[@]##*/}" | sed 's/\.pid//g')" >&2
  fi
  return "$status"
}
trap stop_started EXIT

# start NAME COMMAND...: run a daemon (it forks into the background) and wait for its PID file
start() {
  local name=$1
  shift
  "$@" || { echo "up.sh: $name did not start (exit $?); its log: $DIR/log/$name.log" >&2; return 1; }
  STARTED+=("$DIR/run/$name.pid")
  for _ in $(seq 1 100); do [ -s "$DIR/run/$name.pid" ] && return 0; sleep 0.1; done
  echo "up.sh: $name wrote no PID file within 10 s; its log: $DIR/log/$name.log" >&2
  return 1
}

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "up.sh: installing slurm-wlm and munge with apt-get" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$DIR"/{etc,state,spool,log,run,munge,bin}
chmod 700 "$DIR/munge"

# munge: our own key, socket and state
if [ ! -f "$DIR/munge/munge.key" ]; then
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$DIR/munge/munge.key"
fi
if ! alive "$DIR/run/munged.pid"; then
  start munged munged --force --socket="$DIR/munge/munge.sock" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed"
fi

# slurm.conf: node as `slurmd -C` reports it; linuxproc tracking and cons_tres work without cgroups;
# cred_expire=5: a requeued job may start again after 5 s instead of SLURM's default 120 s
USER_NAME=$(id -un)
NODE_LINE=$(slurmd -C | head -n 1)
NODE=$(echo "$NODE_LINE" | sed -E 's/^NodeName=([^ ]+).*/\1/')
cat > "$CONF.tmp" <<CONF
ClusterName=gpsbench-local
SlurmctldHost=$NODE
SlurmUser=$USER_NAME
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.sock,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=86400
MaxArraySize=1001
KillWait=10
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
$NODE_LINE State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
sed -i -E 's/ UpTime=[^ ]*//' "$CONF.tmp"
mv "$CONF.tmp" "$CONF"
export SLURM_CONF=$CONF

# sacct without accounting: answers submitit's query from scontrol (see slurm/local/sacct)
ln -sf "$HERE/sacct" "$DIR/bin/sacct"

if ! alive "$DIR/run/slurmctld.pid"; then
  start slurmctld slurmctld -f "$CONF"
fi
if ! alive "$DIR/run/slurmd.pid"; then
  start slurmd slurmd -f "$CONF"
fi

# bounded: each sinfo for 5 s at most, all of it WAIT_S; a daemon that died says so at once
deadline=$((SECONDS + WAIT_S))
while [ "$SECONDS" -lt "$deadline" ]; do
  if timeout 5 sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed|allocated"; then
    echo "export SLURM_CONF=$CONF PATH=$DIR/bin:\$PATH"
    exit 0
  fi
  for name in slurmctld slurmd; do
    if ! alive "$DIR/run/$name.pid"; then
      echo "up.sh: $name stopped: $(tail -n 1 "$DIR/log/$name.log" 2>/dev/null | cut -c1-200)" >&2
      exit 1
    fi
  done
  sleep 0.2
done
echo "up.sh: the node did not become idle within $WAIT_S s; logs: $DIR/log/" >&2
exit 1
