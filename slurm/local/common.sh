# Shared by up.sh and down.sh (sourced): stopping a process by its PID file, and who holds a port.

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop PIDFILE: TERM the process it names, KILL it after 5 s, remove the file
stop_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# port_holder PORT: nothing when the TCP port is free; else who listens there ("python3, pid 123", or
# "a process" when ss cannot tell, e.g. another user's)
port_holder() {
  local port=$1 listening="" who=""
  if command -v ss >/dev/null; then
    listening=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)
    who=$(printf '%s' "$listening" | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n 1 | sed 's/users:(("//; s/",pid=/, pid /')
  fi
  if [ -z "$listening" ] && ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
    return 0
  fi
  echo "${who:-a process}"
}
