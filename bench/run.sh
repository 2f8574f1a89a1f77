#!/usr/bin/env bash
# Switchyard benchmark: the same two-namespace topology on each system under
# test, measured in one run, systems alternating, several rounds, medians and
# ratios to the Linux kernel bridge.  Run as root.  See bench/README.md.
#
#   bash bench/run.sh [run]          measure (npm run bench)
#   bash bench/run.sh setup SYSTEM   build one topology and leave it up to poke at
#   bash bench/run.sh teardown       remove everything this script creates
#   bash bench/run.sh list           systems this script knows
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_SYSTEMS ("kernel-bridge
# switchyard"), BENCH_TCP_T (8 s measured, after 1 s omitted), BENCH_PPS_T (5 s),
# BENCH_PING_N (500), BENCH_PING_I (0.002 s), BENCH_METRICS ("pps tcp1 tcp4
# ping"), BENCH_OUT (bench/out), BENCH_RUN (/tmp/switchyard-bench, scratch),
# BENCH_SY_ARGS (extra daemon options, e.g. "--busy-poll 0"), BENCH_NODE_FLAGS (the
# daemon's node options, e.g. --trace-gc).
#
# Topology: netns sbA (10.77.0.1/24) and sbB (10.77.0.2/24), one interface
# each, joined by the system under test; iperf3 server in sbB, clients and the
# frame generator in sbA.  All traffic stays inside these namespaces.  Every
# namespace and link created is named sb*; every process started is recorded
# (PID + start time) and killed by PID; teardown runs on exit, error and Ctrl-C.
#
# Adding a system = writing setup_<name> and teardown_<name> (dashes in the
# name become underscores) below and adding the name to ALL_SYSTEMS.
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

ROUNDS=${BENCH_ROUNDS:-3}
SYSTEMS=${BENCH_SYSTEMS:-kernel-bridge switchyard}
TCP_T=${BENCH_TCP_T:-8}
PPS_T=${BENCH_PPS_T:-5}
PING_N=${BENCH_PING_N:-500}
PING_I=${BENCH_PING_I:-0.002}
METRICS=${BENCH_METRICS:-pps tcp1 tcp4 ping}
OUT=$(realpath -m "${BENCH_OUT:-$HERE/out}")
RUN=$(realpath -m "${BENCH_RUN:-/tmp/switchyard-bench}")
SY_ARGS=${BENCH_SY_ARGS:-}

ALL_SYSTEMS="kernel-bridge switchyard ovs-tso vde c-spin c-tso c-tso-thr"
BASELINE=kernel-bridge
NETNS_LIST="sbA sbB sbS"           # every namespace this script may create
ROOT_LINKS="sbtA sbtB sbovs0"      # links that may be left in the root netns
IP_A=10.77.0.1
IP_B=10.77.0.2
IPERF_PORT=5201
CGEN=$HERE/bin/cgen
SPINFWD=$HERE/bin/spinfwd
SY="node ${BENCH_NODE_FLAGS:-} $ROOT/bin/switchyard.js"  # Switchyard CLI
PIDS_FILE=$RUN/pids                # "PID STARTTIME" per process we started

# shellcheck source=lib.sh
. "$HERE/lib.sh"

# run_wait OUTFILE ERRFILE CMD...: run a measurement in the background and
# wait for it, so a signal to this script is handled at once and the command
# is killed by PID at teardown.
run_wait() {
    local o=$1 e=$2; shift 2
    "$@" >"$o" 2>"$e" 9>&- &
    local pid=$!
    remember_pid "$pid"
    wait "$pid"
}

# ------------------------------------------------------------------ helpers
ns_exists() { [ -e "/run/netns/$1" ]; }

mk_sandboxes() { # sbA and sbB, loopback up, IPv6 off (no RS/DAD/MLD noise)
    local ns
    for ns in sbA sbB; do
        ip netns add "$ns" || return 1
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
}

addr() { # NS IF IP: address /24, MTU 1500, up
    ip -n "$1" link set "$2" mtu 1500 &&
    ip -n "$1" addr add "$3/24" dev "$2" &&
    ip -n "$1" link set "$2" up
}

wait_link() { # NAME [NS]
    local n=$1 ns=${2:-}
    for _ in $(seq 100); do
        if [ -n "$ns" ]; then ip -n "$ns" link show "$n" >/dev/null 2>&1 && return 0
        else ip link show "$n" >/dev/null 2>&1 && return 0; fi
        sleep 0.05
    done
    log "link $n never appeared"; return 1
}

taps_into_sandboxes() { # the system's TAPs sbtA/sbtB (root netns) into sbA/sbB, addressed
    local t
    for t in A B; do wait_link "sbt$t" && ip link set "sbt$t" netns "sb$t" || return 1; done
    addr sbA sbtA $IP_A && addr sbB sbtB $IP_B || return 1
    IF_A=sbtA; IF_B=sbtB
}

offloads() { # NS IF: the sandbox interface's tx offload flags, one line
    ip netns exec "$1" ethtool -k "$2" 2>/dev/null |
        grep -E '^(tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' |
        tr -s ' \n' ' '
}

if_mac() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }
if_stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

# ------------------------------------------------------------------ systems
# setup_<name> builds sbA/sbB joined by the system and sets
#   IF_A, IF_B  the interface in sbA / sbB
#   SW_PIDS     processes whose CPU time is charged to the switch (empty for
#               kernel data planes)
#   NOTE        one line of facts for notes.txt (versions, offloads, sysctls)
# and returns non-zero on failure.  teardown_<name> stops what setup started
# (the common teardown then kills leftovers and deletes the namespaces); it must
# be safe to call when the system is not set up.
IF_A=""; IF_B=""; SW_PIDS=""; NOTE=""

# --- Linux kernel bridge: bridge sbbr0 in its own netns sbS, veth pairs.
setup_kernel_bridge() {
    mk_sandboxes && ip netns add sbS || return 1
    ip -n sbS link set lo up
    # br_netfilter is built into this kernel and its hooks default to 1 in
    # every new netns: turn them off where the bridge lives.
    local f v
    for f in iptables ip6tables arptables; do
        ip netns exec sbS sysctl -qw "net.bridge.bridge-nf-call-$f=0" || return 1
        v=$(ip netns exec sbS sysctl -n "net.bridge.bridge-nf-call-$f") || return 1
        [ "$v" = 0 ] || { log "bridge-nf-call-$f is $v in sbS"; return 1; }
    done
    ip -n sbS link add sbbr0 type bridge || return 1
    ip -n sbS link set sbbr0 up
    ip link add sb0 netns sbA type veth peer name sbvA netns sbS || return 1
    ip link add sb0 netns sbB type veth peer name sbvB netns sbS || return 1
    for v in sbvA sbvB; do
        ip -n sbS link set "$v" master sbbr0 && ip -n sbS link set "$v" up || return 1
    done
    addr sbA sb0 $IP_A && addr sbB sb0 $IP_B || return 1
    IF_A=sb0; IF_B=sb0; SW_PIDS=""
    NOTE="bridge sbbr0 in netns sbS, veth sbA:sb0<->sbS:sbvA, sbB:sb0<->sbS:sbvB; in sbS bridge-nf-call-{iptables,ip6tables,arptables}=$(
        ip netns exec sbS sh -c 'for f in iptables ip6tables arptables; do printf %s, $(cat /proc/sys/net/bridge/bridge-nf-call-$f); done')"
    NOTE="${NOTE%,}; sbA:sb0 $(offloads sbA sb0)"
}
teardown_kernel_bridge() { :; }   # deleting sbS/sbA/sbB removes the bridge and veths

# --- Switchyard: daemon in the root netns, two TAP ports on network "default",
# each moved into its sandbox.
SY_PID=""
SY_DIR=$RUN/switchyard
sy() { timeout 20 $SY --socket "$SY_DIR/sock" "$@"; }

setup_switchyard() {
    if [ ! -f "$ROOT/dist/cli/main.js" ]; then
        log "switchyard is not built ($ROOT/dist/cli/main.js missing): run 'npm run build' first"
        return 1
    fi
    mk_sandboxes || return 1
    rm -rf "$SY_DIR"; mkdir -p "$SY_DIR/state"
    local logf=$OUT/logs/${ROUND:-setup}-switchyard-daemon.log
    mkdir -p "$(dirname "$logf")"
    $SY daemon --socket "$SY_DIR/sock" --state-dir "$SY_DIR/state" $SY_ARGS >"$logf" 2>&1 9>&- &
    SY_PID=$!
    remember_pid "$SY_PID"
    echo "$SY_PID" >"$SY_DIR/pid"
    local ok=0
    for _ in $(seq 100); do       # ready when `stats` answers (<= 20 s)
        kill -0 "$SY_PID" 2>/dev/null || { log "switchyard daemon exited; log: $logf"; tail -5 "$logf" >&2; return 1; }
        if sy stats >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ $ok = 1 ] || { log "switchyard daemon not ready after 20 s; log: $logf"; return 1; }
    local t
    for t in sbtA sbtB; do
        sy port add "$t" --network default >"$SY_DIR/port-$t.out" 2>&1 ||
            { log "switchyard port add $t failed: $(tail -3 "$SY_DIR/port-$t.out")"; return 1; }
    done
    taps_into_sandboxes || return 1
    SW_PIDS=$SY_PID
    local offa; offa=$(offloads sbA sbtA)
    case "$offa" in
        *"tx-checksumming: on"*"tcp-segmentation-offload: on"*) ;;
        *) log "warning: switchyard TAP sbtA offloads are not on: $offa" ;;
    esac
    NOTE="switchyard $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$([ -n "$(git -C "$ROOT" status --porcelain -- src native 2>/dev/null)" ] && echo +uncommitted); node $(node -v); daemon pid $SY_PID in root netns${SY_ARGS:+ ($SY_ARGS)}, TAP ports sbtA/sbtB on network default moved into sbA/sbB; sbA:sbtA $offa"
}
teardown_switchyard() {
    [ -n "$SY_PID" ] || { [ -s "$SY_DIR/pid" ] && SY_PID=$(cat "$SY_DIR/pid"); }
    if [ -n "$SY_PID" ] && kill -0 "$SY_PID" 2>/dev/null && [ -n "${ROUND:-}" ]; then
        sy stats >"$OUT/logs/$ROUND-switchyard-stats.txt" 2>&1 || true
    fi
    [ -n "$SY_PID" ] && grep -q "^$SY_PID " "$PIDS_FILE" 2>/dev/null && stop_pid "$SY_PID" 5
    SY_PID=""
    rm -rf "$SY_DIR"
}

# --- vde_switch (vde2): its tuntap module creates one TAP per -t and holds the
# fds; the TAPs are then moved into the sandboxes.
VDE_DIR=$RUN/vde
setup_vde() {
    command -v vde_switch >/dev/null || { log "vde_switch missing: bash bench/install-deps.sh vde"; return 1; }
    mk_sandboxes || return 1
    rm -rf "$VDE_DIR"; mkdir -p "$VDE_DIR" "$OUT/logs"
    vde_switch -d -p "$VDE_DIR/pid" -s "$VDE_DIR/ctl" -M "$VDE_DIR/mgmt" -t sbtA -t sbtB \
        >"$OUT/logs/${ROUND:-setup}-vde.log" 2>&1 9>&- || { log "vde_switch failed"; return 1; }
    for _ in $(seq 100); do [ -s "$VDE_DIR/pid" ] && break; sleep 0.05; done
    [ -s "$VDE_DIR/pid" ] || { log "vde_switch wrote no pid file"; return 1; }
    SW_PIDS=$(cat "$VDE_DIR/pid"); remember_pid "$SW_PIDS"
    taps_into_sandboxes || return 1
    NOTE="$(vde_switch -v 2>&1 | grep -m1 -i 'vde' | tr -s ' '); vde_switch -t sbtA -t sbtB; sbA:sbtA $(offloads sbA sbtA)"
}
teardown_vde() {
    local pid
    if [ -s "$VDE_DIR/pid" ]; then
        pid=$(cat "$VDE_DIR/pid")
        grep -q "^$pid " "$PIDS_FILE" 2>/dev/null && stop_pid "$pid" 5
    fi
    rm -rf "$VDE_DIR"
}

# --- c-spin: bench/spinfwd.c, a reference rather than a switch: one read and one
# write per frame between two TAPs, poll() that never sleeps, no offloads.  Its ping
# is the floor for a userspace switch between two TAPs on this machine, now.
SPIN_DIR=$RUN/c-spin
setup_c_spin() {
    mk_sandboxes || return 1
    rm -rf "$SPIN_DIR"; mkdir -p "$SPIN_DIR" "$OUT/logs"
    "$SPINFWD" sbtA sbtB >"$OUT/logs/${ROUND:-setup}-c-spin.log" 2>&1 9>&- &
    SW_PIDS=$!; remember_pid "$SW_PIDS"; echo "$SW_PIDS" >"$SPIN_DIR/pid"
    taps_into_sandboxes || return 1
    NOTE="bench/spinfwd.c: poll() with timeout 0, read + write per frame, no offloads; sbA:sbtA $(offloads sbA sbtA)"
}
teardown_c_spin() {
    [ -s "$SPIN_DIR/pid" ] && stop_pid "$(cat "$SPIN_DIR/pid")" 5
    rm -rf "$SPIN_DIR"
}

# --- c-tso: bench/spinfwd.c -t, also a reference: Switchyard's TAP design without its
# switch (virtio-net header with TSO and checksum offload, poll() that sleeps, a ready TAP
# drained and then written).  Its TCP figures are what reading and writing TAPs allows here.
# c-tso-thr: the same with a thread per direction (spinfwd -T), both cores forwarding.
TSOFWD_DIR=$RUN/c-tso
setup_tsofwd() { # NAME FLAG NOTE
    mk_sandboxes || return 1
    rm -rf "$TSOFWD_DIR"; mkdir -p "$TSOFWD_DIR" "$OUT/logs"
    "$SPINFWD" "$2" sbtA sbtB >"$OUT/logs/${ROUND:-setup}-$1.log" 2>&1 9>&- &
    SW_PIDS=$!; remember_pid "$SW_PIDS"; echo "$SW_PIDS" >"$TSOFWD_DIR/pid"
    taps_into_sandboxes || return 1
    NOTE="bench/spinfwd.c $2: vnet header + TSO/csum offload, $3; sbA:sbtA $(offloads sbA sbtA)"
}
setup_c_tso() { setup_tsofwd c-tso -t "poll() that sleeps, up to 64 reads then writes"; }
setup_c_tso_thr() { setup_tsofwd c-tso-thr -T "a thread per direction blocked in read()"; }
teardown_c_tso() {
    [ -s "$TSOFWD_DIR/pid" ] && stop_pid "$(cat "$TSOFWD_DIR/pid")" 5
    rm -rf "$TSOFWD_DIR"
}
teardown_c_tso_thr() { teardown_c_tso; }

# --- Open vSwitch, userspace (netdev) datapath with userspace TSO: a private
# ovsdb-server + ovs-vswitchd under $RUN/ovs (the system's OVS, if any, is
# not touched), bridge sbovs0 (NORMAL action = MAC learning), two tap ports
# moved into the sandboxes.  This kernel has no openvswitch module.
OVS_DIR=$RUN/ovs
ovs_env() {
    env OVS_RUNDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR" \
        OVS_PKGDATADIR=/usr/share/openvswitch "$@"
}
ovsctl() { ovs_env ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=10 "$@"; }
setup_ovs_tso() {
    command -v ovs-vswitchd >/dev/null || { log "ovs-vswitchd missing: bash bench/install-deps.sh ovs-tso"; return 1; }
    mk_sandboxes || return 1
    rm -rf "$OVS_DIR"; mkdir -p "$OVS_DIR"
    ovs_env ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema || return 1
    ovs_env ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
        --pidfile="$OVS_DIR/ovsdb-server.pid" --detach --no-chdir \
        --log-file="$OVS_DIR/ovsdb-server.log" 2>>"$OVS_DIR/stderr.log" 9>&- || { log "ovsdb-server failed"; return 1; }
    remember_pid "$(cat "$OVS_DIR/ovsdb-server.pid")"
    ovsctl --no-wait init || return 1
    # must be set before ovs-vswitchd starts: TAPs opened with IFF_VNET_HDR + TSO
    ovsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true || return 1
    ovs_env ovs-vswitchd "unix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/ovs-vswitchd.pid" --detach --no-chdir \
        --log-file="$OVS_DIR/ovs-vswitchd.log" 2>>"$OVS_DIR/stderr.log" 9>&- || { log "ovs-vswitchd failed"; return 1; }
    SW_PIDS=$(cat "$OVS_DIR/ovs-vswitchd.pid"); remember_pid "$SW_PIDS"
    ovsctl add-br sbovs0 -- set bridge sbovs0 datapath_type=netdev fail-mode=standalone || return 1
    local t
    for t in sbtA sbtB; do ovsctl add-port sbovs0 "$t" -- set interface "$t" type=tap || return 1; done
    taps_into_sandboxes || return 1
    NOTE="$(ovs-vswitchd --version | head -1); datapath_type=netdev, fail-mode=standalone (NORMAL), userspace-tso-enable=$(ovsctl get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null); sbA:sbtA $(offloads sbA sbtA)"
}
teardown_ovs_tso() {
    local f pid
    if [ -S "$OVS_DIR/db.sock" ] && [ -s "$OVS_DIR/ovs-vswitchd.pid" ] && kill -0 "$(cat "$OVS_DIR/ovs-vswitchd.pid")" 2>/dev/null; then
        [ -n "${ROUND:-}" ] && cp "$OVS_DIR/ovs-vswitchd.log" "$OUT/logs/$ROUND-ovs-vswitchd.log" 2>/dev/null
        ovsctl --timeout=5 --if-exists del-br sbovs0 2>/dev/null
    fi
    for f in ovs-vswitchd ovsdb-server; do
        [ -s "$OVS_DIR/$f.pid" ] || continue
        pid=$(cat "$OVS_DIR/$f.pid")
        grep -q "^$pid " "$PIDS_FILE" 2>/dev/null && stop_pid "$pid" 5
    done
    rm -rf "$OVS_DIR"
}

# ------------------------------------------------------------------ teardown
teardown() {
    local s
    for s in $ALL_SYSTEMS; do "teardown_${s//-/_}"; done
    kill_ours
    for s in $NETNS_LIST; do
        ns_exists "$s" && { ip netns del "$s" || log "could not delete netns $s"; }
    done
    for s in $ROOT_LINKS; do
        ip link show "$s" >/dev/null 2>&1 && { ip link del "$s" 2>/dev/null || ip tuntap del dev "$s" mode tap 2>/dev/null; }
    done
    for s in $ROOT_LINKS; do
        ip link show "$s" >/dev/null 2>&1 && log "warning: link $s still exists"
    done
    IF_A=""; IF_B=""; SW_PIDS=""
    return 0
}

# ------------------------------------------------------------------ metrics
emit() { echo "$ROUND,$SYS,$1,$2" >>"$CSV"; }
want() { case " $METRICS " in *" $1 "*) return 0 ;; esac; return 1; }

# Snapshot before a test, and the common CPU figures after it:
#   <m>_cpu_pct   switch CPU time / wall time (100 = one core)
#   <m>_busy_pct  whole machine busy (all cores, 100 = all busy)
snap() { C0=$(cpu_ticks); B0=$(busy_ticks); T0=$(now); }
unsnap() { # METRIC: sets DCPU_S (switch CPU seconds) and WALL_S
    local c1 b1 t1; c1=$(cpu_ticks); b1=$(busy_ticks); t1=$(now)
    WALL_S=$(calc "printf \"%.3f\", $t1 - $T0")
    DCPU_S=$(calc "printf \"%.3f\", ($c1 - $C0) / $HZ")
    [ -n "$SW_PIDS" ] && emit "$1_cpu_pct" "$(calc "printf \"%.1f\", $DCPU_S / $WALL_S * 100")"
    emit "$1_busy_pct" "$(echo "$B0 $b1" | awk '{ if ($4 > $2) printf "%.1f", ($3 - $1) / ($4 - $2) * 100; else print "nan" }')"
}

jnum() { # FILE EXPR: evaluate a JS expression over the JSON in FILE (as j)
    node -e 'try { const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
               const v = eval(process.argv[2]); console.log(v === undefined || v === null ? "nan" : v) }
             catch (e) { console.log("nan") }' "$1" "$2"
}

start_server() {
    ip netns exec sbB iperf3 -s -p $IPERF_PORT >"$OUT/logs/$ROUND-$SYS-iperf3-server.log" 2>&1 9>&- &
    SRV_PID=$!
    remember_pid "$SRV_PID"
    for _ in $(seq 100); do
        ip netns exec sbB ss -ltnH "sport = :$IPERF_PORT" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    log "iperf3 server did not start"; return 1
}

# Small frames: cgen in sbA sends 106-byte frames (64-byte UDP payload) to
# sbB's MAC/IP, port 9, for PPS_T s; counted at sbB's interface (rx_packets)
# and, as a cross-check, at sbB's UDP stack (datagrams to a closed port).
udp_in() { ip netns exec sbB awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["InDatagrams"] + $c["NoPorts"] + $c["InErrors"] }' /proc/net/snmp; }

measure_pps() {
    local macb rx0 rx1 u0 u1 j=$OUT/logs/$ROUND-$SYS-cgen.json
    macb=$(if_mac sbB "$IF_B") || return 1
    rx0=$(if_stat sbB "$IF_B" rx_packets); u0=$(udp_in)
    snap
    if ! run_wait "$j" "$j.err" ip netns exec sbA "$CGEN" "$IF_A" "$macb" $IP_A $IP_B "$PPS_T" 64 9; then
        log "$SYS: cgen failed: $(cat "$j.err")"; emit error cgen_failed; return 1
    fi
    unsnap pps
    sleep 0.3                               # let queued frames drain
    rx1=$(if_stat sbB "$IF_B" rx_packets); u1=$(udp_in)
    local secs acc; secs=$(jnum "$j" j.seconds); acc=$(jnum "$j" j.accepted)
    local rx=$((rx1 - rx0))
    emit pps_rx_kpps "$(calc "printf \"%.1f\", $rx / $secs / 1000")"
    emit pps_udp_rx_kpps "$(calc "printf \"%.1f\", ($u1 - $u0) / $secs / 1000")"
    emit pps_tx_kpps "$(calc "printf \"%.1f\", $acc / $secs / 1000")"
    emit pps_loss_pct "$(calc "if ($acc > 0) printf \"%.1f\", ($acc - $rx) / $acc * 100; else print \"nan\"")"
    emit pps_enobufs "$(jnum "$j" 'j.enobufs + j.partial')"
    if [ -n "$SW_PIDS" ]; then
        emit pps_cpu_ns_per_frame "$(calc "if ($rx > 0) printf \"%.0f\", $DCPU_S / $rx * 1e9; else print \"nan\"")"
    fi
}

# TCP: iperf3 client in sbA, TCP_T s measured after 1 s omitted; STREAMS 1 or 4.
measure_tcp() { # METRIC STREAMS
    local m=$1 p=$2 j=$OUT/json/$ROUND-$SYS-$1.json
    snap
    run_wait "$j" "$j.err" ip netns exec sbA iperf3 -c $IP_B -p $IPERF_PORT -t "$TCP_T" -O 1 -P "$p" -J
    unsnap "$m"
    local g; g=$(jnum "$j" 'j.error ? undefined : (j.end.sum_received.bits_per_second / 1e9).toFixed(3)')
    [ "$g" = nan ] && { log "$SYS: iperf3 $m failed: $(jnum "$j" j.error) $(head -c 300 "$j.err")"; emit error "${m}_failed"; return 1; }
    emit "${m}_gbps" "$g"
    emit "${m}_retr" "$(jnum "$j" j.end.sum_sent.retransmits)"
    if [ -n "$SW_PIDS" ]; then   # switch CPU seconds per Gbit carried
        emit "${m}_cpu_s_per_gbit" "$(calc "if ($g > 0) printf \"%.4f\", ($DCPU_S / $WALL_S) / $g; else print \"nan\"")"
    fi
}

# Ping: PING_N echo requests every PING_I s from sbA to sbB.
measure_ping() {
    local f=$OUT/logs/$ROUND-$SYS-ping.txt
    snap
    run_wait "$f" "$f.err" ip netns exec sbA ping -n -c "$PING_N" -i "$PING_I" -W 1 $IP_B
    unsnap ping
    # per-reply times (ms) -> avg and median in us; loss from the summary
    local r; r=$(awk -F'time=' '/ time=/ { split($2, a, " "); print a[1] * 1000 }' "$f" | sort -n |
        awk '{ v[NR] = $1; s += $1 } END { if (NR == 0) { print "nan nan nan nan"; exit }
               m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
               printf "%.1f %.1f %.1f %.1f\n", s / NR, m, v[1], v[NR] }')
    local loss; loss=$(grep -o '[0-9.]*% packet loss' "$f" | cut -d% -f1)
    set -- $r
    emit ping_avg_us "$1"; emit ping_p50_us "$2"; emit ping_min_us "$3"; emit ping_max_us "$4"
    emit ping_mdev_us "$(awk -F'/' '/^rtt|^round-trip/ { printf "%.1f", $NF * 1000 }' "$f" | tr -dc '0-9.')"
    emit ping_loss_pct "${loss:-nan}"
}

measure() {
    local ok=0
    for _ in $(seq 20); do     # reachability; also fills ARP caches and MAC tables
        ip netns exec sbA ping -n -c 1 -W 1 -q $IP_B >/dev/null 2>&1 && { ok=1; break; }
        sleep 0.3
    done
    if [ $ok = 0 ] || ! ip netns exec sbA ping -n -c 3 -i 0.2 -W 1 -q $IP_B >/dev/null 2>&1; then
        log "$SYS: sbA cannot ping sbB, skipping its metrics"; emit error ping_failed; return 1
    fi
    want pps  && { log "round $ROUND: $SYS small frames (${PPS_T}s)"; measure_pps; }
    want tcp1 && { log "round $ROUND: $SYS TCP 1 stream (${TCP_T}s)"; measure_tcp tcp1 1; }
    want tcp4 && { log "round $ROUND: $SYS TCP 4 streams (${TCP_T}s)"; measure_tcp tcp4 4; }
    want ping && { log "round $ROUND: $SYS ping x$PING_N"; measure_ping; }
    return 0
}

run_one() {
    IF_A=""; IF_B=""; SW_PIDS=""; NOTE=""
    log "round $ROUND: $SYS setup"
    if ! "setup_${SYS//-/_}"; then
        log "$SYS: setup failed"; emit error setup_failed; teardown; return
    fi
    echo "round $ROUND $SYS: $NOTE" >>"$OUT/notes.txt"
    if start_server; then measure; else emit error server_failed; fi
    [ -n "$SW_PIDS" ] && ! kill -0 $SW_PIDS 2>/dev/null && { log "$SYS: switch process died during the tests"; emit error switch_died; }
    teardown
}

# ------------------------------------------------------------------ main
check_systems() {
    local s
    for s in $SYSTEMS; do
        case " $ALL_SYSTEMS " in *" $s "*) ;; *) die "unknown system '$s' (known: $ALL_SYSTEMS)" ;; esac
    done
}

write_env() {
    {
        echo "date: $(date -Is)"
        echo "host: $(uname -n); kernel $(uname -r); $(nproc) cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
        echo "node: $(node -v 2>/dev/null); iperf3: $(iperf3 --version 2>/dev/null | head -1)"
        echo "repo: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain -- src native bin 2>/dev/null | wc -l) changed files under src/native/bin"
        echo "knobs: BENCH_ROUNDS=$ROUNDS BENCH_SYSTEMS='$SYSTEMS' BENCH_TCP_T=$TCP_T BENCH_PPS_T=$PPS_T BENCH_PING_N=$PING_N BENCH_PING_I=$PING_I BENCH_METRICS='$METRICS' BENCH_SY_ARGS='$SY_ARGS'"
        echo "loadavg at start: $(cat /proc/loadavg)"
        echo "machine busy in the 2 s before start: ${IDLE_CHECK}% (other load skews every figure)"
    } >"$OUT/env.txt"
}

idle_check() { # busy % of the whole machine over 2 s, before anything starts
    local b0 b1; b0=$(busy_ticks); sleep 2; b1=$(busy_ticks)
    IDLE_CHECK=$(echo "$b0 $b1" | awk '{ if ($4 > $2) printf "%.0f", ($3 - $1) / ($4 - $2) * 100; else print 0 }')
    [ "$IDLE_CHECK" -gt 10 ] && log "warning: the machine is already ${IDLE_CHECK}% busy; results will be noisy"
    return 0
}

CLEANUP_ON_EXIT=0
on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ $CLEANUP_ON_EXIT = 1 ]; then
        log "cleaning up"
        teardown
    fi
    exit $rc
}
on_signal() { log "interrupted ($1)"; exit 130; }

main_run() {
    check_systems
    [ "$ROUNDS" -ge 1 ] 2>/dev/null || die "BENCH_ROUNDS must be >= 1"
    bash "$HERE/install-deps.sh" $SYSTEMS || die "install-deps.sh failed"
    command -v node >/dev/null || die "node is needed (bench/summarize.mjs)"
    build_tools cgen spinfwd
    mkdir -p "$OUT/json" "$OUT/logs"
    rm -f "$OUT"/json/*.json* "$OUT"/logs/*
    idle_check
    CSV=$OUT/raw.csv
    echo "round,system,metric,value" >"$CSV"
    : >"$OUT/notes.txt"
    write_env
    CLEANUP_ON_EXIT=1
    teardown                                  # leftovers of an earlier run
    local order
    for ROUND in $(seq "$ROUNDS"); do
        order=$SYSTEMS                         # odd rounds in list order, even reversed
        [ $((ROUND % 2)) = 0 ] && order=$(echo $SYSTEMS | tr ' ' '\n' | tac | tr '\n' ' ')
        for SYS in $order; do run_one; done
    done
    echo "loadavg at end: $(cat /proc/loadavg)" >>"$OUT/env.txt"
    node "$HERE/summarize.mjs" "$CSV" --baseline "$BASELINE" --env "$OUT/env.txt" >"$OUT/summary.md" ||
        die "summarize.mjs failed"
    node "$HERE/chart.mjs" "$OUT" >"$OUT/chart.svg" || die "chart.mjs failed"
    cat "$OUT/summary.md"
    log "done: $OUT/summary.md, chart $OUT/chart.svg (raw: $CSV, logs: $OUT/logs, notes: $OUT/notes.txt)"
}

[ "$(id -u)" = 0 ] || die "run as root (namespaces, veth, TAP)"
mkdir -p "$RUN"
touch "$PIDS_FILE"
exec 9>"$RUN/lock"
flock -n 9 || die "another bench/run.sh holds $RUN/lock; never run two benchmarks at once"
trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

case "${1:-run}" in
    run) main_run ;;
    list) echo "$ALL_SYSTEMS" ;;
    setup)
        SYS=${2:-}; SYSTEMS=$SYS; check_systems; [ -n "$SYS" ] || die "usage: $0 setup SYSTEM"
        build_tools cgen spinfwd; mkdir -p "$OUT/logs"
        teardown
        CLEANUP_ON_EXIT=1                      # tear down if setup fails or is interrupted
        "setup_${SYS//-/_}" || die "setup of $SYS failed"
        CLEANUP_ON_EXIT=0
        echo "$SYS is up: sbA:$IF_A $IP_A <-> sbB:$IF_B $IP_B; switch pids: ${SW_PIDS:-none}"
        echo "$NOTE"
        echo "remove it with: bash $0 teardown" ;;
    teardown) teardown ;;
    -h|--help|help) sed -n '2,24p' "$0" ;;
    *) die "unknown command '$1' (run, setup SYSTEM, teardown, list)" ;;
esac
