#!/usr/bin/env bash
# The main job: builds Switchyard, starts the daemon with its default network, plugs two
# sandboxes (network namespaces) into it and pings one from the other through the switch.
# The daemon keeps running in the foreground until Ctrl-C, which removes the demo again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the switch creates TAP devices and namespaces" >&2; exit 2; }
bash scripts/install-deps.sh
bash scripts/build.sh

SOCK=${SWITCHYARD_SOCKET:-/run/switchyard/switchyard.sock}
STATE=${SWITCHYARD_STATE_DIR:-/var/lib/switchyard}
sy() { node bin/switchyard.js --socket "$SOCK" "$@"; }

# Its own session: Ctrl-C reaches this script, which cleans up before stopping the daemon.
setsid node bin/switchyard.js --socket "$SOCK" daemon --state-dir "$STATE" &
DAEMON=$!
cleanup() {
  trap - EXIT INT TERM
  sy sandbox rm demo-a demo-b >/dev/null 2>&1 || true
  kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do sy stats >/dev/null 2>&1 && break; sleep 0.1; done

sy sandbox rm demo-a demo-b >/dev/null 2>&1 || true
sy sandbox create demo-a --network default >/dev/null
sy sandbox create demo-b --network default >/dev/null
B=$(sy --format json sandbox inspect demo-b | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].endpoints[0].address.split("/")[0]))')

echo
sy network ls
echo
sy sandbox ls
echo
echo "demo-a pings demo-b ($B) through the switch:"
ip netns exec demo-a ping -c 3 "$B"
echo
sy stats
cat <<EOF2

The daemon is running (socket $SOCK). Try, in another shell:
  ip netns exec demo-a ping $B
  node bin/switchyard.js fdb show
  node bin/switchyard.js sandbox create demo-c --network default
Ctrl-C stops the daemon and removes the demo sandboxes.
EOF2
wait "$DAEMON"
