#!/bin/bash
# start|restart|stop PORT DIR: the kernel harness's --restart-cmd for gateway-child.ts. Starts the
# gateway detached (setsid, output to DIR/child.log) and returns once it listens; stop and restart
# end the running one by the pid in DIR/child.pid (SIGTERM: a clean stop) and wait for it to exit.
# PORTICO_CHILD names another child script with the same contract (test/smb/gateway-child.ts).
set -u
cmd=$1 port=$2 dir=$3
node=${PORTICO_NODE:-node}
here=$(cd "$(dirname "$0")" && pwd)
script=${PORTICO_CHILD:-$here/gateway-child.ts}
stop() {
  [ -f "$dir/child.pid" ] || return 0
  pid=$(cat "$dir/child.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  return 0
}
start() {
  : > "$dir/child.log"
  rm -f "$dir/child.pid"
  setsid nohup "$node" "$script" "$port" "$dir" >> "$dir/child.log" 2>&1 < /dev/null &
  for _ in $(seq 1 300); do grep -q "^READY $port" "$dir/child.log" && return 0; sleep 0.1; done
  echo "gateway did not start:" >&2; cat "$dir/child.log" >&2
  return 1
}
case $cmd in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  *) echo "usage: $0 start|restart|stop PORT DIR" >&2; exit 2 ;;
esac
