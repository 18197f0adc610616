#!/usr/bin/env bash
# Start a one-node SLURM on this machine with every file under DIR (config, munge key and socket,
# state, spool, logs, PIDs) and its own ports, so it never touches a system-wide SLURM or munge.
# Idempotent: a second call finds the daemons alive and only prints the environment.
#   slurm/local/up.sh DIR         then: export SLURM_CONF=DIR/etc/slurm.conf PATH=DIR/bin:$PATH
#   slurm/local/down.sh DIR       stops exactly the daemons this script started, by PID
# Ports: SLURM_LOCAL_PORT (default 16817; slurmd uses the next one).
set -euo pipefail

DIR=${1:?usage: slurm/local/up.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${SLURM_LOCAL_PORT:-16817}
CONF=$DIR/etc/slurm.conf

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

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
  munged --force --socket="$DIR/munge/munge.sock" --key-file="$DIR/munge/munge.key" \
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
  slurmctld -f "$CONF"
fi
if ! alive "$DIR/run/slurmd.pid"; then
  slurmd -f "$CONF"
fi

for _ in $(seq 1 100); do
  if sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed|allocated"; then
    echo "export SLURM_CONF=$CONF PATH=$DIR/bin:\$PATH"
    exit 0
  fi
  sleep 0.2
done
echo "up.sh: the node did not become idle; logs: $DIR/log/" >&2
sinfo >&2 || true
exit 1
