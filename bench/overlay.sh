#!/usr/bin/env bash
# Overlay benchmark: two "hosts" joined by a veth underlay, a sandbox behind each, the sandboxes
# on one VXLAN overlay; the kernel's vxlan device + bridge next to a Switchyard daemon on each
# host, in one run, systems alternating, several rounds, medians and ratios to kernel vxlan.
# Run as root.  See bench/README.md ("Overlay: VXLAN between two hosts") and bench/RESULTS.md.
#
#   bash bench/overlay.sh [run]          measure (npm run bench:overlay)
#   bash bench/overlay.sh setup SYSTEM   build one system and leave it up to poke at
#   bash bench/overlay.sh teardown       remove everything this script creates
#   bash bench/overlay.sh list           systems this script knows
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_OVERLAY_SYSTEMS ("kernel-vxlan
# switchyard"), BENCH_TCP_T (8 s measured, after 1 s omitted), BENCH_PPS_T (5 s),
# BENCH_PING_N (500), BENCH_PING_I (0.002 s), BENCH_OVERLAY_METRICS ("pps tcp1
# tcp4 ping"), BENCH_OVERLAY_LOCK_WAIT (3600 s to wait for another benchmark's
# lock; BENCH_OVERLAY_LOCK_HELD=1: the caller holds it), BENCH_SY_ARGS (extra daemon
# arguments), BENCH_OUT (bench/out), BENCH_RUN (/tmp/switchyard-bench: its lock is
# shared with the other benchmarks).
#
# Topology (every namespace and link name starts with sbo; no traffic leaves them):
#   sboHA, sboHB  the hosts: underlay veth ul0, 10.78.1.1/24 and 10.78.1.2/24, MTU 1500
#   sboA, sboB    the sandboxes: eth0 10.78.0.11/24 and 10.78.0.12/24, MTU 1450 (1500 - 50)
#   kernel-vxlan  per host: vx0 (type vxlan id 42 dstport 4789 local/remote, dev ul0) and veth
#                 vs (peer eth0 in the sandbox) on bridge br0 (bridge-nf-call-* = 0)
#   switchyard    per host: a daemon in the host netns (--advertise-addr, --peer the other
#                 host), overlay network ov (VNI 42, 10.78.0.0/24), the sandbox made by it
# iperf3 server in sboB; iperf3 client, ping and the frame generator (cgen) in sboA.
# Every process started is recorded (PID + start time) and killed by PID; teardown runs
# before and after each system, and on exit, error and Ctrl-C.
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

ROUNDS=${BENCH_ROUNDS:-3}
SYSTEMS=${BENCH_OVERLAY_SYSTEMS:-kernel-vxlan switchyard}
TCP_T=${BENCH_TCP_T:-8}
PPS_T=${BENCH_PPS_T:-5}
PING_N=${BENCH_PING_N:-500}
PING_I=${BENCH_PING_I:-0.002}
METRICS=${BENCH_OVERLAY_METRICS:-pps tcp1 tcp4 ping}
LOCK_WAIT=${BENCH_OVERLAY_LOCK_WAIT:-3600}
SY_ARGS=${BENCH_SY_ARGS:-}
OUT=$(realpath -m "${BENCH_OUT:-$HERE/out}")
RUN=$(realpath -m "${BENCH_RUN:-/tmp/switchyard-bench}")

ALL_SYSTEMS="kernel-vxlan switchyard"
BASELINE=kernel-vxlan
DIR=$RUN/overlay                   # scratch: pids, daemon sockets and state
ODIR=$OUT/overlay                  # raw.csv, env.txt, notes.txt, json/, logs/
SUMMARY=$OUT/overlay-summary.md
CSV=$ODIR/raw.csv
PIDS_FILE=$DIR/pids                # "PID STARTTIME" per process we started
NETNS_LIST="sboA sboB sboHA sboHB"
HOSTS="A B"
UL_A=10.78.1.1; UL_B=10.78.1.2      # underlay (VTEP) addresses
IP_A=10.78.0.11; IP_B=10.78.0.12    # sandboxes
SUBNET=10.78.0.0/24
VNI=42
OV_MTU=1450
IPERF_PORT=5201
CGEN=$HERE/bin/cgen
SY="node $ROOT/bin/switchyard.js"

# shellcheck source=lib.sh
. "$HERE/lib.sh"

ul_ip() { [ "$1" = A ] && echo $UL_A || echo $UL_B; }
other() { [ "$1" = A ] && echo B || echo A; }
sb_ip() { [ "$1" = A ] && echo $IP_A || echo $IP_B; }

# bg_wait OUTFILE ERRFILE CMD...: a measurement in the background, recorded, waited for (a
# signal to this script is handled at once; teardown kills it by PID).
bg_wait() {
    local o=$1 e=$2; shift 2
    "$@" >"$o" 2>"$e" 9>&- &
    local pid=$!
    remember_pid "$pid"
    wait "$pid"
}

mk_ns() { # NAME: lo up, IPv6 off (no RS/DAD/MLD noise in the counters)
    ip netns add "$1" || return 1
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

mk_hosts() { # the two hosts and the underlay between them
    local h
    for h in $HOSTS; do mk_ns "sboH$h" || return 1; done
    ip link add ul0 netns sboHA type veth peer name ul0 netns sboHB || return 1
    for h in $HOSTS; do
        ip -n "sboH$h" addr add "$(ul_ip $h)/24" dev ul0 && ip -n "sboH$h" link set ul0 mtu 1500 up || return 1
    done
}

tx_offloads() { # NS IF: the tx offload flags, one line
    ip netns exec "$1" ethtool -k "$2" 2>/dev/null |
        grep -E '^(tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|tx-udp-segmentation):' |
        tr -s ' \n' ' '
}

# ------------------------------------------------------------------ systems
# setup_<name> builds sboA/sboB on the overlay and sets SW_PIDS (processes charged as the
# data plane; empty for the kernel) and NOTE (one line for notes.txt); teardown_<name> stops
# what it started and is harmless when nothing is up.
SW_PIDS=""; NOTE=""

setup_kernel_vxlan() {
    mk_hosts || return 1
    local h f
    for h in $HOSTS; do
        mk_ns "sbo$h" || return 1
        # br_netfilter is built in and defaults to 1 in every new netns: off where the bridge is.
        for f in iptables ip6tables arptables; do
            ip netns exec "sboH$h" sysctl -qw "net.bridge.bridge-nf-call-$f=0" || return 1
        done
        ip -n "sboH$h" link add vx0 type vxlan id $VNI dstport 4789 local "$(ul_ip $h)" remote "$(ul_ip "$(other $h)")" dev ul0 || return 1
        ip -n "sboH$h" link add br0 type bridge || return 1
        ip link add vs netns "sboH$h" type veth peer name eth0 netns "sbo$h" || return 1
        ip -n "sboH$h" link set vx0 master br0 && ip -n "sboH$h" link set vs master br0 || return 1
        ip -n "sboH$h" link set vs mtu $OV_MTU || return 1
        for f in vx0 br0 vs; do ip -n "sboH$h" link set $f up || return 1; done
        ip -n "sbo$h" addr add "$(sb_ip $h)/24" dev eth0 && ip -n "sbo$h" link set eth0 mtu $OV_MTU up || return 1
    done
    SW_PIDS=""
    NOTE="kernel vxlan id $VNI dstport 4789 over veth ul0 (MTU 1500), bridge br0 per host; sboA:eth0 $(tx_offloads sboA eth0); vx0 $(ip netns exec sboHA ethtool -k vx0 2>/dev/null | grep -E '^(tcp-segmentation-offload|tx-udp_tnl-segmentation):' | tr -s ' \n' ' ')"
}
teardown_kernel_vxlan() { :; }   # deleting the namespaces removes the devices

sy() { # HOST ARGS...: the CLI against that host's daemon
    local h=$1; shift
    timeout 30 $SY --socket "$DIR/sy$h/sock" "$@"
}

setup_switchyard() {
    [ -f "$ROOT/dist/cli/main.js" ] || { log "switchyard is not built: run 'npm run build' first"; return 1; }
    mk_hosts || return 1
    local h pid logf ok
    for h in $HOSTS; do
        rm -rf "$DIR/sy$h"; mkdir -p "$DIR/sy$h/state" "$ODIR/logs"
        logf=$ODIR/logs/${ROUND:-setup}-switchyard-$h.log
        # nsenter, not `ip netns exec`: that one unshares the mount namespace, and the daemon
        # must see the /run/netns of the sandboxes it makes.
        # shellcheck disable=SC2086
        nsenter --net="/run/netns/sboH$h" $SY --socket "$DIR/sy$h/sock" daemon --state-dir "$DIR/sy$h/state" \
            --advertise-addr "$(ul_ip $h)" --peer "$(ul_ip "$(other $h)")" --no-docker-plugin \
            --default-subnet "10.78.$([ $h = A ] && echo 2 || echo 3).0/24" --dns 127.0.0.1:9 $SY_ARGS \
            >"$logf" 2>&1 9>&- &
        pid=$!
        remember_pid "$pid"
        echo "$pid" >"$DIR/sy$h/pid"
        SW_PIDS="$SW_PIDS $pid"
    done
    for h in $HOSTS; do
        ok=0
        pid=$(cat "$DIR/sy$h/pid")
        for _ in $(seq 100); do       # ready when `stats` answers (<= 20 s)
            kill -0 "$pid" 2>/dev/null || { log "daemon $h exited: $(tail -3 "$ODIR/logs/${ROUND:-setup}-switchyard-$h.log")"; return 1; }
            if sy $h stats >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.2
        done
        [ $ok = 1 ] || { log "daemon $h not ready after 20 s"; return 1; }
        sy $h network create ov --driver overlay --subnet $SUBNET -o vni=$VNI >"$DIR/sy$h/net.out" 2>&1 ||
            { log "network create on $h failed: $(cat "$DIR/sy$h/net.out")"; return 1; }
        sy $h sandbox create "sbo$h" --network ov --ip "$(sb_ip $h)" >"$DIR/sy$h/sb.out" 2>&1 ||
            { log "sandbox create on $h failed: $(cat "$DIR/sy$h/sb.out")"; return 1; }
    done
    SW_PIDS=${SW_PIDS# }
    local offa; offa=$(tx_offloads sboA eth0)
    case "$offa" in
        *"tx-checksumming: on"*"tcp-segmentation-offload: on"*) ;;
        *) log "warning: switchyard sandbox eth0 offloads are not on: $offa" ;;
    esac
    NOTE="switchyard $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$([ -n "$(git -C "$ROOT" status --porcelain -- src native 2>/dev/null)" ] && echo +uncommitted); node $(node -v); daemons $SW_PIDS in sboHA/sboHB ${SY_ARGS:+($SY_ARGS) }; overlay ov VNI $VNI MTU $(ip netns exec sboA cat /sys/class/net/eth0/mtu); sboA:eth0 $offa"
}
teardown_switchyard() {
    local h pid
    for h in $HOSTS; do
        [ -s "$DIR/sy$h/pid" ] || continue
        pid=$(cat "$DIR/sy$h/pid")
        if kill -0 "$pid" 2>/dev/null; then
            [ -n "${ROUND:-}" ] && sy $h --format json stats >"$ODIR/logs/$ROUND-switchyard-$h-stats.json" 2>&1
            sy $h sandbox rm "sbo$h" >/dev/null 2>&1
        fi
        stop_pid "$pid" 5
        rm -rf "$DIR/sy$h"
    done
}

teardown() {
    local s
    for s in $ALL_SYSTEMS; do "teardown_${s//-/_}"; done
    kill_ours
    for s in $NETNS_LIST; do
        [ -e "/run/netns/$s" ] && { ip netns del "$s" || log "could not delete netns $s"; }
        rm -rf "/etc/netns/$s"
    done
    SW_PIDS=""
    return 0
}

# ------------------------------------------------------------------ metrics
emit() { echo "$ROUND,$SYS,$1,$2" >>"$CSV"; }
want() { case " $METRICS " in *" $1 "*) return 0 ;; esac; return 1; }
jnum() { # FILE EXPR: a JS expression over the JSON in FILE (as j)
    node -e 'try { const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
               const v = eval(process.argv[2]); console.log(v === undefined || v === null ? "nan" : v) }
             catch (e) { console.log("nan") }' "$1" "$2"
}

# Around each test: switch CPU % (both daemons, 100 = one core) and machine busy %.
snap() { C0=$(cpu_ticks); B0=$(busy_ticks); T0=$(now); }
unsnap() { # METRIC: sets DCPU_S and WALL_S
    local c1 b1 t1; c1=$(cpu_ticks); b1=$(busy_ticks); t1=$(now)
    WALL_S=$(calc "printf \"%.3f\", $t1 - $T0")
    DCPU_S=$(calc "printf \"%.3f\", ($c1 - $C0) / $HZ")
    [ -n "$SW_PIDS" ] && emit "$1_cpu_pct" "$(calc "printf \"%.1f\", $DCPU_S / $WALL_S * 100")"
    emit "$1_busy_pct" "$(echo "$B0 $b1" | awk '{ if ($4 > $2) printf "%.1f", ($3 - $1) / ($4 - $2) * 100; else print "nan" }')"
}

start_server() {
    ip netns exec sboB iperf3 -s -p $IPERF_PORT >"$ODIR/logs/$ROUND-$SYS-iperf3-server.log" 2>&1 9>&- &
    remember_pid $!
    for _ in $(seq 100); do
        ip netns exec sboB ss -ltnH "sport = :$IPERF_PORT" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    log "iperf3 server did not start"; return 1
}

# Small frames: cgen in sboA sends 106-byte frames (64-byte UDP payload) to sboB's MAC/IP,
# port 9, for PPS_T s, counted at sboB's eth0 (rx_packets).
measure_pps() {
    local macb rx0 rx1 j=$ODIR/logs/$ROUND-$SYS-cgen.json
    macb=$(ip netns exec sboB cat /sys/class/net/eth0/address) || return 1
    rx0=$(ip netns exec sboB cat /sys/class/net/eth0/statistics/rx_packets)
    snap
    if ! bg_wait "$j" "$j.err" ip netns exec sboA "$CGEN" eth0 "$macb" $IP_A $IP_B "$PPS_T" 64 9; then
        log "$SYS: cgen failed: $(cat "$j.err")"; emit error cgen_failed; return 1
    fi
    unsnap pps
    sleep 0.3                               # let queued frames drain
    rx1=$(ip netns exec sboB cat /sys/class/net/eth0/statistics/rx_packets)
    local secs acc rx=$((rx1 - rx0)); secs=$(jnum "$j" j.seconds); acc=$(jnum "$j" j.accepted)
    emit pps_rx_kpps "$(calc "printf \"%.1f\", $rx / $secs / 1000")"
    emit pps_tx_kpps "$(calc "printf \"%.1f\", $acc / $secs / 1000")"
    emit pps_loss_pct "$(calc "if ($acc > 0) printf \"%.1f\", ($acc - $rx) / $acc * 100; else print \"nan\"")"
    emit pps_enobufs "$(jnum "$j" 'j.enobufs + j.partial')"
    [ -n "$SW_PIDS" ] && emit pps_cpu_ns_per_frame "$(calc "if ($rx > 0) printf \"%.0f\", $DCPU_S / $rx * 1e9; else print \"nan\"")"
    return 0
}

measure_tcp() { # METRIC STREAMS
    local m=$1 p=$2 j=$ODIR/json/$ROUND-$SYS-$1.json
    snap
    bg_wait "$j" "$j.err" ip netns exec sboA iperf3 -c $IP_B -p $IPERF_PORT -t "$TCP_T" -O 1 -P "$p" -J
    unsnap "$m"
    local g; g=$(jnum "$j" 'j.error ? undefined : (j.end.sum_received.bits_per_second / 1e9).toFixed(3)')
    [ "$g" = nan ] && { log "$SYS: iperf3 $m failed: $(jnum "$j" j.error) $(head -c 300 "$j.err")"; emit error "${m}_failed"; return 1; }
    emit "${m}_gbps" "$g"
    emit "${m}_retr" "$(jnum "$j" j.end.sum_sent.retransmits)"
    [ -n "$SW_PIDS" ] && emit "${m}_cpu_s_per_gbit" "$(calc "if ($g > 0) printf \"%.4f\", ($DCPU_S / $WALL_S) / $g; else print \"nan\"")"
    return 0
}

measure_ping() {
    local f=$ODIR/logs/$ROUND-$SYS-ping.txt
    snap
    bg_wait "$f" "$f.err" ip netns exec sboA ping -n -c "$PING_N" -i "$PING_I" -W 1 $IP_B
    unsnap ping
    local r; r=$(awk -F'time=' '/ time=/ { split($2, a, " "); print a[1] * 1000 }' "$f" | sort -n |
        awk '{ v[NR] = $1; s += $1 } END { if (NR == 0) { print "nan nan nan nan"; exit }
               m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
               printf "%.1f %.1f %.1f %.1f\n", s / NR, m, v[1], v[NR] }')
    set -- $r
    emit ping_avg_us "$1"; emit ping_p50_us "$2"; emit ping_min_us "$3"; emit ping_max_us "$4"
    emit ping_mdev_us "$(awk -F'/' '/^rtt|^round-trip/ { printf "%.1f", $NF * 1000 }' "$f" | tr -dc '0-9.')"
    local loss; loss=$(grep -o '[0-9.]*% packet loss' "$f" | cut -d% -f1)
    emit ping_loss_pct "${loss:-nan}"
}

measure() {
    local ok=0
    for _ in $(seq 30); do     # reachability; also fills ARP caches and MAC tables
        ip netns exec sboA ping -n -c 1 -W 1 -q $IP_B >/dev/null 2>&1 && { ok=1; break; }
        sleep 0.3
    done
    if [ $ok = 0 ]; then log "$SYS: sboA cannot ping sboB, skipping its metrics"; emit error ping_failed; return 1; fi
    want pps  && { log "round $ROUND: $SYS small frames (${PPS_T}s)"; measure_pps; }
    want tcp1 && { log "round $ROUND: $SYS TCP 1 stream (${TCP_T}s)"; measure_tcp tcp1 1; }
    want tcp4 && { log "round $ROUND: $SYS TCP 4 streams (${TCP_T}s)"; measure_tcp tcp4 4; }
    want ping && { log "round $ROUND: $SYS ping x$PING_N"; measure_ping; }
    return 0
}

run_one() {
    SW_PIDS=""; NOTE=""
    teardown
    log "round $ROUND: $SYS setup"
    if ! "setup_${SYS//-/_}"; then log "$SYS: setup failed"; emit error setup_failed; teardown; return; fi
    echo "round $ROUND $SYS: $NOTE" >>"$ODIR/notes.txt"
    if start_server; then measure; else emit error server_failed; fi
    local p
    for p in $SW_PIDS; do kill -0 "$p" 2>/dev/null || { log "$SYS: daemon $p died during the tests"; emit error switch_died; }; done
    teardown
}

# ------------------------------------------------------------------ main
check_systems() {
    local s
    for s in $SYSTEMS; do
        case " $ALL_SYSTEMS " in *" $s "*) ;; *) die "unknown system '$s' (known: $ALL_SYSTEMS)" ;; esac
    done
}

main_run() {
    check_systems
    [ "$ROUNDS" -ge 1 ] 2>/dev/null || die "BENCH_ROUNDS must be >= 1"
    bash "$HERE/install-deps.sh" || die "install-deps.sh failed"
    build_tools cgen
    mkdir -p "$ODIR/json" "$ODIR/logs"
    rm -f "$ODIR"/json/* "$ODIR"/logs/*
    local b0 b1 idle
    b0=$(busy_ticks); sleep 2; b1=$(busy_ticks)
    idle=$(echo "$b0 $b1" | awk '{ if ($4 > $2) printf "%.0f", ($3 - $1) / ($4 - $2) * 100; else print 0 }')
    [ "$idle" -gt 10 ] && log "warning: the machine is already ${idle}% busy; results will be noisy"
    echo "round,system,metric,value" >"$CSV"
    : >"$ODIR/notes.txt"
    {
        echo "command: $CMDLINE"
        echo "date: $(date -Is)"
        echo "host: $(uname -n); kernel $(uname -r); $(nproc) cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
        echo "node: $(node -v 2>/dev/null); iperf3: $(iperf3 --version 2>/dev/null | head -1)"
        echo "repo: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain -- src native bin 2>/dev/null | wc -l) changed files under src/native/bin"
        echo "knobs: BENCH_ROUNDS=$ROUNDS BENCH_OVERLAY_SYSTEMS='$SYSTEMS' BENCH_TCP_T=$TCP_T BENCH_PPS_T=$PPS_T BENCH_PING_N=$PING_N BENCH_PING_I=$PING_I BENCH_OVERLAY_METRICS='$METRICS' BENCH_SY_ARGS='$SY_ARGS'"
        echo "loadavg at start: $(cat /proc/loadavg)"
        echo "machine busy in the 2 s before start: ${idle}% (other load skews every figure)"
    } >"$ODIR/env.txt"
    CLEANUP_ON_EXIT=1
    local order
    for ROUND in $(seq "$ROUNDS"); do
        order=$SYSTEMS                         # odd rounds in list order, even reversed
        [ $((ROUND % 2)) = 0 ] && order=$(echo $SYSTEMS | tr ' ' '\n' | tac | tr '\n' ' ')
        for SYS in $order; do run_one; done
    done
    echo "loadavg at end: $(cat /proc/loadavg)" >>"$ODIR/env.txt"
    node "$HERE/summarize.mjs" "$CSV" --baseline "$BASELINE" --env "$ODIR/env.txt" >"$SUMMARY" || die "summarize.mjs failed"
    cat "$SUMMARY"
    log "done: $SUMMARY (raw: $CSV, logs: $ODIR/logs, notes: $ODIR/notes.txt)"
}

CLEANUP_ON_EXIT=0
on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    [ $CLEANUP_ON_EXIT = 1 ] && { log "cleaning up"; teardown; }
    exit $rc
}
on_signal() { log "interrupted ($1)"; exit 130; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces, veth, TAP)"
CMDLINE="$0 $*"
case "${1:-run}" in list) echo "$ALL_SYSTEMS"; exit 0 ;; -h|--help|help) sed -n '2,27p' "$0"; exit 0 ;; esac
mkdir -p "$RUN" "$DIR"
touch "$PIDS_FILE"
# BENCH_OVERLAY_LOCK_HELD=1: the caller holds the lock already, e.g. around setup, poking at
# the system and teardown: flock /tmp/switchyard-bench/lock sh -c '...; bash bench/overlay.sh teardown'
if [ "${BENCH_OVERLAY_LOCK_HELD:-0}" != 1 ]; then
    take_lock "$LOCK_WAIT"
fi
trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

case "${1:-run}" in
    run) main_run ;;
    setup)
        SYS=${2:-}; [ -n "$SYS" ] || die "usage: $0 setup SYSTEM"
        SYSTEMS=$SYS; check_systems; build_tools cgen
        mkdir -p "$ODIR/logs" "$ODIR/json"; ROUND=setup; CSV=/dev/null
        CLEANUP_ON_EXIT=1
        teardown
        "setup_${SYS//-/_}" || die "setup of $SYS failed"
        CLEANUP_ON_EXIT=0
        echo "$SYS is up: sboA:eth0 $IP_A <-> sboB:eth0 $IP_B over underlay $UL_A <-> $UL_B; daemon pids: ${SW_PIDS:-none}"
        echo "$NOTE"
        echo "  e.g. ip netns exec sboB iperf3 -s -D; ip netns exec sboA iperf3 -c $IP_B"
        echo "remove it with: bash $0 teardown" ;;
    teardown) teardown ;;
    *) die "unknown command '$1' (run, setup SYSTEM, teardown, list)" ;;
esac
