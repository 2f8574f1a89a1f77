#!/usr/bin/env bash
# NAT and published ports: Switchyard next to the kernel path Docker uses (bridge +
# iptables MASQUERADE/DNAT, br_netfilter on) and pasta, in one run, systems
# alternating, several rounds, medians and ratios to the kernel path.  Run as
# root.  See bench/README.md ("NAT and published ports").
#
#   bash bench/nat.sh [run]          measure (npm run bench:nat)
#   bash bench/nat.sh setup SYSTEM   build one system and leave it up to poke at
#   bash bench/nat.sh teardown       remove everything this script creates
#   bash bench/nat.sh list           systems this script knows
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_NAT_SYSTEMS ("kernel-nat
# switchyard pasta"), BENCH_TCP_T (8 s measured, after 1 s omitted),
# BENCH_NAT_CONN_T (5 s of HTTP requests), BENCH_NAT_CONN_C (8 in parallel),
# BENCH_NAT_METRICS ("tcp-egress tcp-published conn-egress conn-published"; empty = none),
# BENCH_NAT_FLOW_TESTS ("egress:100000:4 published:100000 egress:15000"; each
# DIR:FLOWS[:SOURCE_PORTS]; empty = none), BENCH_NAT_FLOW_RATE (10000 flows/s),
# BENCH_NAT_LOCK_WAIT (3600 s
# to wait for another benchmark's lock), BENCH_OUT (bench/out), BENCH_RUN
# (/tmp/switchyard-bench: its lock is shared with bench/run.sh and bench/dns.sh),
# BENCH_SY_ARGS (extra daemon options).
#
# Topology (every name starts with sbn; no traffic leaves these namespaces):
#   sbnO  "outside": 10.82.0.2/24 on sbnvH, iperf3 server :5201, HTTP :8080,
#         UDP sink :9000/:9001 (flow tests; with SOURCE_PORTS also 10.82.0.100.. and
#         :20000-20499); the clients of published ports.
#   host  sbnH (switchyard: the daemon), sbnK (kernel-nat: bridge + iptables) or
#         sbnP (pasta): 10.82.0.1/24 on sbnvO, the veth peer of sbnO's sbnvH.
#   sbnS  the sandbox: default route via its gateway; iperf3 server :5201, HTTP
#         :8080, UDP sink :9000/:9001; published as host ports 5202->5201,
#         8082->8080 (TCP) and 9002->9000, 9003->9001 (UDP).
# Every process started is recorded (PID + start time) and killed by PID;
# teardown runs before and after each system, and on exit, error and Ctrl-C.
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

ROUNDS=${BENCH_ROUNDS:-3}
SYSTEMS=${BENCH_NAT_SYSTEMS:-kernel-nat switchyard pasta}
TCP_T=${BENCH_TCP_T:-8}
CONN_T=${BENCH_NAT_CONN_T:-5}
CONN_C=${BENCH_NAT_CONN_C:-8}
METRICS=${BENCH_NAT_METRICS-tcp-egress tcp-published conn-egress conn-published}
FLOW_TESTS=${BENCH_NAT_FLOW_TESTS-egress:100000:4 published:100000 egress:15000}
FLOW_RATE=${BENCH_NAT_FLOW_RATE:-10000}
LOCK_WAIT=${BENCH_NAT_LOCK_WAIT:-3600}
SY_ARGS=${BENCH_SY_ARGS:-}
OUT=$(realpath -m "${BENCH_OUT:-$HERE/out}")
RUN=$(realpath -m "${BENCH_RUN:-/tmp/switchyard-bench}")

ALL_SYSTEMS="kernel-nat switchyard pasta"
BASELINE=kernel-nat
DIR=$RUN/nat                       # scratch: pids, daemon socket and state
ODIR=$OUT/nat                      # raw.csv, env.txt, notes.txt, json/, logs/
SUMMARY=$OUT/nat-summary.md
CSV=$ODIR/raw.csv
PIDS_FILE=$DIR/pids                # "PID STARTTIME" per process we started
NETNS_LIST="sbnS sbnO sbnH sbnK sbnP"
SY="node $ROOT/bin/switchyard.js"
SY_SOCK=$DIR/sy/sock
NATB=$HERE/nat                     # helpers: http-server/client, udp-flows, udp-sink, summarize

OUT_IP=10.82.0.2                   # sbnO
HOST_IP=10.82.0.1                  # the host netns, as sbnO sees it
SY_SUBNET=10.81.0.0/24             # switchyard's network
K_SUBNET=10.83.0.0/24 K_GW=10.83.0.1 K_SB=10.83.0.2      # kernel-nat's bridge network
P_GW=10.85.0.1 P_SB=10.85.0.2                             # pasta's sandbox address
IPERF_PORT=5201 HTTP_PORT=8080 UDP_PORTS="9000 9001"
PUB_IPERF=5202 PUB_HTTP=8082 PUB_UDP="9002 9003"          # published host ports
FLOW_FIRST_PORT=10000              # flow tests: source ports FIRST .. FIRST + N/2 - 1, two destination ports
# flow tests with SOURCE_PORTS: each source port to N/SOURCE_PORTS destinations, addresses
# SPREAD_NET.SPREAD_FIRST.. of sbnO (added for the test) x ports SPREAD_PORT .. + SPREAD_PORTS - 1
SPREAD_NET=10.82.0 SPREAD_FIRST=100 SPREAD_ADDRS=150 SPREAD_PORT=20000 SPREAD_PORTS=500

# shellcheck source=lib.sh
. "$HERE/lib.sh"

# bg NETNS LOGFILE CMD...: start CMD in NETNS in the background (nsenter execs it, so $!
# is the command itself) and record it; sets BG_PID.
BG_PID=""
bg() {
    local ns=$1 lf=$2; shift 2
    nsenter --net="/run/netns/$ns" "$@" >"$lf" 2>&1 9>&- &
    BG_PID=$!
    remember_pid "$BG_PID"
}

# run_wait OUTFILE ERRFILE NETNS CMD...: a client in NETNS, waited for in the background
# so a signal to this script is handled at once and the client is killed by PID.
run_wait() {
    local o=$1 e=$2 ns=$3; shift 3
    nsenter --net="/run/netns/$ns" "$@" >"$o" 2>"$e" 9>&- &
    local pid=$!
    remember_pid "$pid"
    wait "$pid"
}

# ------------------------------------------------------------------ helpers
ns_exists() { [ -e "/run/netns/$1" ]; }
sy() { timeout 15 $SY --socket "$SY_SOCK" "$@"; }

jnum() { # FILE EXPR: evaluate a JS expression over the JSON in FILE (as j); nan if none
    # (the whole file, or else its last line: the helpers print READY before their JSON)
    node -e 'let j; try { const t = require("fs").readFileSync(process.argv[1], "utf8");
               try { j = JSON.parse(t) } catch { j = JSON.parse(t.trim().split("\n").pop()) }
               const v = eval(process.argv[2]); console.log(v === undefined || v === null || v === "" || Number.isNaN(v) ? "nan" : v) }
             catch (e) { console.log("nan") }' "$1" "$2"
}

mk_ns() { # NAME: loopback up, IPv6 off (no RS/DAD/MLD noise)
    ip netns add "$1" || return 1
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# The outside netns and its link to HOSTNS: sbnO:sbnvH 10.82.0.2 <-> HOSTNS:sbnvO 10.82.0.1
mk_outside() { # HOSTNS
    mk_ns sbnO || return 1
    ip link add sbnvO netns "$1" type veth peer name sbnvH netns sbnO || return 1
    ip -n "$1" addr add $HOST_IP/24 dev sbnvO && ip -n "$1" link set sbnvO up || return 1
    ip -n sbnO addr add $OUT_IP/24 dev sbnvH && ip -n sbnO link set sbnvH up || return 1
}

wait_tcp_listen() { # NETNS PORT
    for _ in $(seq 100); do
        ip netns exec "$1" ss -ltnH "sport = :$2" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    log "nothing listens on TCP port $2 in $1"; return 1
}

wait_ready() { # LOGFILE PID: until the helper printed READY
    for _ in $(seq 100); do
        grep -q READY "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    log "helper did not get ready: $(tail -3 "$1" 2>/dev/null)"; return 1
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo nan; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo nan; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
slab_kb() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }
ct_slab_kb() { awk '$1 == "nf_conntrack" { printf "%.0f", $2 * $4 / 1024 }' /proc/slabinfo 2>/dev/null; }

# ------------------------------------------------------------------ systems
# setup_<name> builds host netns + sbnO + sbnS joined by the system, with the
# published ports, and sets SW_PIDS (processes whose CPU time and memory are
# the NAT's; empty for the kernel), SB_GW (the sandbox's gateway) and NOTE.
SW_PIDS=""; SB_GW=""; NOTE=""

# --- kernel-nat: what Docker builds for a bridge network, in a netns of our own.
# br_netfilter is built into this kernel and bridge-nf-call-iptables defaults to 1
# in every new netns; Docker leaves it (sets it) at 1: checked, not changed.
kernel_rules() { # the iptables-restore input Docker's bridge driver makes (docker0 -> sbnbr0)
    local p d
    echo '*nat'
    echo ':PREROUTING ACCEPT [0:0]'; echo ':INPUT ACCEPT [0:0]'; echo ':OUTPUT ACCEPT [0:0]'; echo ':POSTROUTING ACCEPT [0:0]'
    echo ':DOCKER - [0:0]'
    echo '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER'
    echo '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER'
    echo "-A POSTROUTING -s $K_SUBNET ! -o sbnbr0 -j MASQUERADE"
    for p in "tcp $PUB_IPERF $IPERF_PORT" "tcp $PUB_HTTP $HTTP_PORT" "udp ${PUB_UDP% *} ${UDP_PORTS% *}" "udp ${PUB_UDP#* } ${UDP_PORTS#* }"; do
        set -- $p
        echo "-A POSTROUTING -s $K_SB/32 -d $K_SB/32 -p $1 -m $1 --dport $3 -j MASQUERADE"
    done
    echo '-A DOCKER -i sbnbr0 -j RETURN'
    for p in "tcp $PUB_IPERF $IPERF_PORT" "tcp $PUB_HTTP $HTTP_PORT" "udp ${PUB_UDP% *} ${UDP_PORTS% *}" "udp ${PUB_UDP#* } ${UDP_PORTS#* }"; do
        set -- $p
        echo "-A DOCKER ! -i sbnbr0 -p $1 -m $1 --dport $2 -j DNAT --to-destination $K_SB:$3"
    done
    echo 'COMMIT'
    echo '*filter'
    echo ':INPUT ACCEPT [0:0]'; echo ':FORWARD DROP [0:0]'; echo ':OUTPUT ACCEPT [0:0]'
    echo ':DOCKER - [0:0]'; echo ':DOCKER-ISOLATION-STAGE-1 - [0:0]'; echo ':DOCKER-ISOLATION-STAGE-2 - [0:0]'; echo ':DOCKER-USER - [0:0]'
    echo '-A FORWARD -j DOCKER-USER'
    echo '-A FORWARD -j DOCKER-ISOLATION-STAGE-1'
    echo '-A FORWARD -o sbnbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'
    echo '-A FORWARD -o sbnbr0 -j DOCKER'
    echo '-A FORWARD -i sbnbr0 ! -o sbnbr0 -j ACCEPT'
    echo '-A FORWARD -i sbnbr0 -o sbnbr0 -j ACCEPT'
    for p in "tcp $IPERF_PORT" "tcp $HTTP_PORT" "udp ${UDP_PORTS% *}" "udp ${UDP_PORTS#* }"; do
        set -- $p
        echo "-A DOCKER -d $K_SB/32 ! -i sbnbr0 -o sbnbr0 -p $1 -m $1 --dport $2 -j ACCEPT"
    done
    echo '-A DOCKER-ISOLATION-STAGE-1 -i sbnbr0 ! -o sbnbr0 -j DOCKER-ISOLATION-STAGE-2'
    echo '-A DOCKER-ISOLATION-STAGE-1 -j RETURN'
    echo '-A DOCKER-ISOLATION-STAGE-2 -o sbnbr0 -j DROP'
    echo '-A DOCKER-ISOLATION-STAGE-2 -j RETURN'
    echo '-A DOCKER-USER -j RETURN'
    echo 'COMMIT'
}
setup_kernel_nat() {
    command -v iptables-restore >/dev/null || { log "iptables missing: bash bench/install-deps.sh nat"; return 1; }
    mk_ns sbnK && mk_ns sbnS && mk_outside sbnK || return 1
    local brnf; brnf=$(ip netns exec sbnK sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null)
    [ "$brnf" = 1 ] || { log "bridge-nf-call-iptables is '$brnf' in sbnK (Docker runs with 1)"; return 1; }
    ip -n sbnK link add sbnbr0 type bridge || return 1
    ip -n sbnK addr add $K_GW/24 dev sbnbr0 && ip -n sbnK link set sbnbr0 up || return 1
    ip link add eth0 netns sbnS type veth peer name sbnvS netns sbnK || return 1
    ip -n sbnK link set sbnvS master sbnbr0 && ip -n sbnK link set sbnvS up || return 1
    ip -n sbnS addr add $K_SB/24 dev eth0 && ip -n sbnS link set eth0 up && ip -n sbnS route add default via $K_GW || return 1
    ip netns exec sbnK sysctl -qw net.ipv4.ip_forward=1 || return 1
    kernel_rules >"$DIR/iptables.rules"
    ip netns exec sbnK iptables-restore <"$DIR/iptables.rules" || { log "iptables-restore failed"; return 1; }
    SW_PIDS=""; SB_GW=$K_GW
    NOTE="$(iptables --version); bridge sbnbr0 $K_GW/24 in sbnK, veth sbnS:eth0 $K_SB <-> sbnK:sbnvS; ip_forward=1; in sbnK bridge-nf-call-iptables=$(ip netns exec sbnK sysctl -n net.bridge.bridge-nf-call-iptables) (left as Docker leaves it); MASQUERADE for $K_SUBNET, DNAT + FORWARD rules as Docker's (rules: $ODIR/logs/kernel-nat-iptables.rules); sbnS:eth0 $(ip -n sbnS -o link show eth0 | grep -o 'mtu [0-9]*')"
    cp "$DIR/iptables.rules" "$ODIR/logs/kernel-nat-iptables.rules" 2>/dev/null
    return 0
}
teardown_kernel_nat() { :; }   # deleting the namespaces removes bridge, veths and rules

# --- switchyard: daemon in sbnH (nsenter --net only: with `ip netns exec` it would get a
# private mount namespace and its sandboxes under /run/netns would be invisible here).
SY_PID=""
setup_switchyard() {
    [ -f "$ROOT/dist/cli/main.js" ] || { log "switchyard is not built ($ROOT/dist/cli/main.js missing): run 'npm run build' first"; return 1; }
    mk_ns sbnH && mk_outside sbnH || return 1
    rm -rf "$DIR/sy"; mkdir -p "$DIR/sy/state"
    local lf=$ODIR/logs/${TAG:-setup}-switchyard-daemon.log
    bg sbnH "$lf" node "$ROOT/bin/switchyard.js" --socket "$SY_SOCK" daemon --state-dir "$DIR/sy/state" \
        --default-subnet $SY_SUBNET --dns 127.0.0.1:9 --nat-max-flows 200000 --nat-max-per-sandbox 200000 $SY_ARGS
    SY_PID=$BG_PID; echo "$SY_PID" >"$DIR/sy/pid"
    local ok=0
    for _ in $(seq 100); do
        kill -0 "$SY_PID" 2>/dev/null || { log "switchyard daemon exited: $(tail -3 "$lf")"; return 1; }
        if sy stats >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ $ok = 1 ] || { log "switchyard daemon not ready after 20 s"; return 1; }
    local pubs=(-p $PUB_IPERF:$IPERF_PORT -p $PUB_HTTP:$HTTP_PORT -p ${PUB_UDP% *}:${UDP_PORTS% *}/udp -p ${PUB_UDP#* }:${UDP_PORTS#* }/udp)
    sy sandbox create sbnS --network default "${pubs[@]}" >"$DIR/sy/create.out" 2>&1 ||
        { log "switchyard sandbox create failed: $(tail -3 "$DIR/sy/create.out")"; return 1; }
    ns_exists sbnS || { log "switchyard made no /run/netns/sbnS"; return 1; }
    ip netns exec sbnS sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    SW_PIDS=$SY_PID; SB_GW=${SY_SUBNET%.0/24}.1
    NOTE="switchyard $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$([ -n "$(git -C "$ROOT" status --porcelain -- src native 2>/dev/null)" ] && echo +uncommitted); node $(node -v); daemon pid $SY_PID in sbnH (--nat-max-flows 200000 --nat-max-per-sandbox 200000${SY_ARGS:+ $SY_ARGS}; RLIMIT_NOFILE $(awk '/Max open files/ { print $4 "/" $5 }' /proc/$SY_PID/limits)); sandbox sbnS $(ip -n sbnS -4 -o addr show eth0 | awk '{ print $4 }') via $SB_GW, published ${pubs[*]}; sbnS:eth0 $(ip -n sbnS -o link show eth0 | grep -o 'mtu [0-9]*'), $(ip netns exec sbnS ethtool -k eth0 2>/dev/null | grep -E '^(tx-checksumming|tcp-segmentation-offload):' | tr -s ' \n' ' ')"
    return 0
}
teardown_switchyard() {
    [ -n "$SY_PID" ] || { [ -s "$DIR/sy/pid" ] && SY_PID=$(cat "$DIR/sy/pid"); }
    if [ -n "$SY_PID" ] && grep -q "^$SY_PID " "$PIDS_FILE" 2>/dev/null && kill -0 "$SY_PID" 2>/dev/null; then
        # let the daemon remove its sandbox (netns, TAP, /etc/netns/sbnS); when its API does
        # not answer (see the flow tests) the namespaces go below all the same
        timeout 10 $SY --socket "$SY_SOCK" sandbox rm sbnS >/dev/null 2>&1 || log "switchyard: 'sandbox rm sbnS' failed (API not answering?)"
        stop_pid "$SY_PID" 5
    fi
    SY_PID=""
    rm -rf "$DIR/sy"
}

# --- pasta (Debian's passt): its own "host" netns sbnP whose only way out is the veth to
# sbnO, so nothing pasta opens can leave the machine; run as root it needs --runas 0.
# MTU: pasta's default 65520 (at 1500 Debian 12's build stalls, see ../shared/peerbench).
PASTA_PID=""
setup_pasta() {
    command -v pasta >/dev/null || { log "pasta missing: bash bench/install-deps.sh nat"; return 1; }
    mk_ns sbnP && mk_ns sbnS && mk_outside sbnP || return 1
    ip -n sbnP route add default via $OUT_IP || return 1    # pasta wants a default route; sbnO forwards nothing
    local fw=(-t $PUB_IPERF:$IPERF_PORT -t $PUB_HTTP:$HTTP_PORT -u ${PUB_UDP% *}:${UDP_PORTS% *} -u ${PUB_UDP#* }:${UDP_PORTS#* })
    bg sbnP "$ODIR/logs/${TAG:-setup}-pasta.log" pasta --foreground --quiet --runas 0 --config-net \
        -a $P_SB -n 24 -g $P_GW -I eth0 -i sbnvO --no-dhcpv6 --no-ndp --no-ra \
        "${fw[@]}" -T none -U none --netns /run/netns/sbnS
    PASTA_PID=$BG_PID
    local ok=0
    for _ in $(seq 100); do
        kill -0 "$PASTA_PID" 2>/dev/null || break
        ip -n sbnS -4 addr show dev eth0 2>/dev/null | grep -q "$P_SB/" && { ok=1; break; }
        sleep 0.05
    done
    [ $ok = 1 ] || { log "pasta did not configure sbnS: $(tail -3 "$ODIR/logs/${TAG:-setup}-pasta.log")"; return 1; }
    SW_PIDS=$PASTA_PID; SB_GW=$P_GW
    NOTE="passt $(dpkg-query -W -f='${Version}' passt 2>/dev/null); pasta pid $PASTA_PID in sbnP (--runas 0, RLIMIT_NOFILE $(awk '/Max open files/ { print $4 "/" $5 }' /proc/$PASTA_PID/limits)), sandbox sbnS $P_SB/24 via $P_GW, forwards ${fw[*]}; sbnS:eth0 $(ip -n sbnS -o link show eth0 | grep -o 'mtu [0-9]*') (pasta's default)"
    return 0
}
teardown_pasta() { [ -n "$PASTA_PID" ] && stop_pid "$PASTA_PID" 5; PASTA_PID=""; }

# ------------------------------------------------------------------ teardown
teardown() {
    local s
    for s in $ALL_SYSTEMS; do "teardown_${s//-/_}"; done
    kill_ours
    for s in $NETNS_LIST; do
        ns_exists "$s" && { ip netns del "$s" || log "could not delete netns $s"; }
    done
    [ -d /etc/netns/sbnS ] && rm -rf /etc/netns/sbnS
    rm -f "$DIR/iptables.rules"
    SW_PIDS=""; SB_GW=""
    return 0
}

# ------------------------------------------------------------------ metrics
emit() { echo "$ROUND,$SYS,$1,$2" >>"$CSV"; }
want() { case " $METRICS " in *" $1 "*) return 0 ;; esac; return 1; }

snap() { C0=$(cpu_ticks); B0=$(busy_ticks); T0=$(now); }
unsnap() { # METRIC: <m>_cpu_pct (NAT process, 100 = one core), <m>_busy_pct (whole machine)
    local c1 b1 t1; c1=$(cpu_ticks); b1=$(busy_ticks); t1=$(now)
    WALL_S=$(calc "printf \"%.3f\", $t1 - $T0")
    DCPU_S=$(calc "printf \"%.3f\", ($c1 - $C0) / $HZ")
    [ -n "$SW_PIDS" ] && emit "$1_cpu_pct" "$(calc "printf \"%.1f\", $DCPU_S / $WALL_S * 100")"
    emit "$1_busy_pct" "$(echo "$B0 $b1" | awk '{ if ($4 > $2) printf "%.1f", ($3 - $1) / ($4 - $2) * 100; else print "nan" }')"
}

start_servers() { # iperf3 + HTTP in sbnO (egress targets) and in sbnS (behind the published ports)
    local ns
    for ns in sbnO sbnS; do
        bg $ns "$ODIR/logs/$TAG-iperf3-server-$ns.log" iperf3 -s -p $IPERF_PORT
        bg $ns "$ODIR/logs/$TAG-http-server-$ns.log" node "$NATB/http-server.mjs" 0.0.0.0 $HTTP_PORT
        wait_ready "$ODIR/logs/$TAG-http-server-$ns.log" "$BG_PID" || return 1
        wait_tcp_listen $ns $IPERF_PORT || return 1
    done
}

reachable() { # the sandbox reaches sbnO over TCP (an HTTP request; ping is not NATed by all)
    for _ in $(seq 20); do
        nsenter --net=/run/netns/sbnS timeout 3 node "$NATB/http-client.mjs" $OUT_IP $HTTP_PORT 0.2 1 2>/dev/null |
            grep -q '"ok":[1-9]' && return 0
        sleep 0.3
    done
    return 1
}

# TCP: iperf3, TCP_T s measured after 1 s omitted; egress = sandbox -> sbnO's server;
# published = sbnO's client -> host port 5202 -> the sandbox's server.
measure_tcp() { # METRIC CLIENT_NS DST PORT
    local m=$1 j=$ODIR/json/$TAG-$1.json
    snap
    run_wait "$j" "$j.err" "$2" timeout $((TCP_T + 30)) iperf3 -c "$3" -p "$4" -t "$TCP_T" -O 1 -J
    unsnap "$m"
    local g; g=$(jnum "$j" 'j.error ? undefined : (j.end.sum_received.bits_per_second / 1e9).toFixed(3)')
    if [ "$g" = nan ]; then
        log "$SYS: iperf3 $m failed: $(jnum "$j" j.error) $(head -c 300 "$j.err")"; emit error "${m}_failed"; return 1
    fi
    emit "${m}_gbps" "$g"
    emit "${m}_retr" "$(jnum "$j" j.end.sum_sent.retransmits)"
    # per-second receiver rates: the slowest second shows stalls
    emit "${m}_min_1s_gbps" "$(jnum "$j" 'Math.min(...j.intervals.filter(i => !i.sum.omitted).map(i => i.sum.bits_per_second)) / 1e9')"
    [ -n "$SW_PIDS" ] && emit "${m}_cpu_s_per_gbit" "$(calc "if ($g > 0) printf \"%.4f\", ($DCPU_S / $WALL_S) / $g; else print \"nan\"")"
    return 0
}

# New connections per second: HTTP GETs, one new TCP connection each, CONN_C in parallel.
measure_conn() { # METRIC CLIENT_NS DST PORT
    local m=$1 j=$ODIR/json/$TAG-$1.json
    snap
    run_wait "$j" "$j.err" "$2" timeout $((CONN_T + 30)) node "$NATB/http-client.mjs" "$3" "$4" "$CONN_T" "$CONN_C"
    unsnap "$m"
    local r; r=$(jnum "$j" j.conn_per_s)
    if [ "$r" = nan ]; then log "$SYS: $m failed: $(head -c 300 "$j.err")"; emit error "${m}_failed"; return 1; fi
    emit "${m}_per_s" "$r"
    emit "${m}_errors" "$(jnum "$j" j.errors)"
    emit "${m}_p50_ms" "$(jnum "$j" j.p50_ms)"
    emit "${m}_p99_ms" "$(jnum "$j" j.p99_ms)"
    [ "$(jnum "$j" j.errors)" != 0 ] && log "$SYS: $m: $(jnum "$j" j.errors) failed requests (first: $(jnum "$j" j.first_error))"
    [ -n "$SW_PIDS" ] && emit "${m}_cpu_us_per_conn" "$(calc "if ($r > 0) printf \"%.0f\", ($DCPU_S / $WALL_S) / $r * 1e6; else print \"nan\"")"
    return 0
}

# Tracked flows, as each system counts them
tracked_flows() {
    case $SYS in
        switchyard) local f=$DIR/stats.json
            if sy stats --format json >"$f" 2>"$ODIR/logs/$TAG-stats.err"; then jnum "$f" j.nat.flows
            else log "$SYS: 'switchyard stats' failed: $(head -c 300 "$ODIR/logs/$TAG-stats.err")"; echo nan; fi ;;
        kernel-nat) ip netns exec sbnK cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo nan ;;
        *) echo nan ;;
    esac
}

# Flow test: N UDP flows, one datagram each, from N/2 source ports to two destination ports;
# egress = sandbox -> sbnO 9000/9001; published = sbnO -> host ports 9002/9003 -> sandbox
# 9000/9001.  With SOURCE_PORTS (egress only): from that many source ports, each to
# N/SOURCE_PORTS destinations (addresses of sbnO x ports, see SPREAD_*), as a sandbox talking
# to many remotes from one port does.  Unanswered UDP flows stay tracked for 30 s
# (Switchyard and conntrack alike); the figures are read 2 s after the generator ends.
measure_flows() { # DIR N [SOURCE_PORTS]
    local dir=$1 n=$2 sp=${3:-} m="flows_$1_$2${3:+_sp$3}" sink_ns gen_ns gen sink_ports=$UDP_PORTS
    if [ -n "$sp" ]; then
        local per=$((n / sp)) np=$SPREAD_PORTS na i
        [ $per -lt $np ] && np=$per
        na=$(((per + np - 1) / np))
        for i in $(seq 0 $((na - 1))); do
            ip -n sbnO addr add $SPREAD_NET.$((SPREAD_FIRST + i))/24 dev sbnvH || { emit error "${m}_addr_failed"; return 1; }
        done
        sink_ns=sbnO gen_ns=sbnS sink_ports=$SPREAD_PORT-$((SPREAD_PORT + np - 1))
        gen=("$SPREAD_NET.$SPREAD_FIRST-$SPREAD_NET.$((SPREAD_FIRST + na - 1))" $FLOW_FIRST_PORT "$sp" "$sink_ports" --per-port "$per")
    elif [ "$dir" = egress ]; then sink_ns=sbnO gen_ns=sbnS gen=($OUT_IP $FLOW_FIRST_PORT $((n / 2)) $UDP_PORTS)
    else sink_ns=sbnS gen_ns=sbnO gen=($HOST_IP $FLOW_FIRST_PORT $((n / 2)) $PUB_UDP); fi
    local sl=$ODIR/logs/$TAG-udp-sink.log
    bg $sink_ns "$sl" node "$NATB/udp-sink.mjs" 0.0.0.0 $sink_ports
    local sink=$BG_PID
    wait_ready "$sl" "$sink" || { emit error "${m}_sink_failed"; return 1; }
    sleep 1
    local p=${SW_PIDS%% *} r0="" f0 s0 c0
    [ -n "$p" ] && { r0=$(rss_kb "$p"); f0=$(nfds "$p"); }
    s0=$(slab_kb); c0=$(ct_slab_kb)
    local j=$ODIR/json/$TAG-$m.json
    snap
    run_wait "$j" "$j.err" $gen_ns timeout 300 node "$NATB/udp-flows.mjs" "${gen[@]}" --rate "$FLOW_RATE"
    unsnap "$m"
    sleep 2
    local tr r1 f1 s1 c1 api=1
    tr=$(tracked_flows)
    [ "$SYS" = switchyard ] && [ "$tr" = nan ] && api=0
    if [ -n "$p" ]; then
        r1=$(rss_kb "$p"); f1=$(nfds "$p")
        emit "${m}_rss_before_mb" "$(calc "printf \"%.1f\", $r0 / 1024")"
        emit "${m}_rss_after_mb" "$(calc "printf \"%.1f\", $r1 / 1024")"
        emit "${m}_hwm_mb" "$(calc "printf \"%.1f\", $(hwm_kb "$p") / 1024")"
        emit "${m}_fds_before" "$f0"
        emit "${m}_fds_after" "$f1"
    fi
    s1=$(slab_kb); c1=$(ct_slab_kb)
    emit "${m}_slab_delta_mb" "$(calc "printf \"%.1f\", ($s1 - $s0) / 1024")"
    [ -n "$c0" ] && [ -n "$c1" ] && emit "${m}_ct_slab_delta_mb" "$(calc "printf \"%.1f\", ($c1 - $c0) / 1024")"
    emit "${m}_tracked" "$tr"
    [ "$SYS" = switchyard ] && emit "${m}_api_ok" $api
    emit "${m}_gen_errors" "$(jnum "$j" j.errors)"
    emit "${m}_gen_s" "$(jnum "$j" j.seconds)"
    kill -USR2 "$sink" 2>/dev/null; sleep 0.3
    emit "${m}_delivered" "$(jnum "$sl" j.datagrams)"
    if [ "$SYS" = switchyard ] && [ $api = 0 ]; then
        log "$SYS: $m: the daemon's API does not answer (its fds: ${f1:-?} of $(awk '/Max open files/ { print $4 }' /proc/$p/limits 2>/dev/null))"
        # once the flows time out (30 s) it answers again: note its counters then
        local w=0
        while [ $w -lt 45 ] && ! sy stats --format json >"$DIR/stats.json" 2>/dev/null; do sleep 3; w=$((w + 3)); done
        if [ -s "$DIR/stats.json" ] && [ "$(jnum "$DIR/stats.json" j.nat.flows)" != nan ]; then
            log "$SYS: $m: API answers again after ~$((w + 2)) s: $(jnum "$DIR/stats.json" 'JSON.stringify(j.nat.conntrack)')"
            emit "${m}_api_back_s" $((w + 2))
            emit "${m}_ct_created" "$(jnum "$DIR/stats.json" j.nat.conntrack.created)"
            emit "${m}_ct_expired" "$(jnum "$DIR/stats.json" j.nat.conntrack.expired)"
            emit "${m}_ct_closed" "$(jnum "$DIR/stats.json" j.nat.conntrack.closed)"
        else
            emit error "${m}_api_down"
        fi
    elif [ "$SYS" = switchyard ] && [ -s "$DIR/stats.json" ]; then
        emit "${m}_ct_created" "$(jnum "$DIR/stats.json" j.nat.conntrack.created)"
        cp "$DIR/stats.json" "$ODIR/logs/$TAG-$m-stats.json"
    fi
    log "$SYS: $m: tracked ${tr}, delivered $(jnum "$sl" j.datagrams)$([ -n "$p" ] && echo ", RSS $((r0 / 1024)) -> $((r1 / 1024)) MiB, fds $f0 -> $f1")"
    return 0
}

run_traffic() { # one system: setup, servers, TCP and connection tests, teardown
    TAG=$ROUND-$SYS
    log "round $ROUND: $SYS setup"
    if ! "setup_${SYS//-/_}"; then log "$SYS: setup failed"; emit error setup_failed; teardown; return; fi
    echo "round $ROUND $SYS: $NOTE" >>"$ODIR/notes.txt"
    if ! start_servers; then emit error server_failed; teardown; return; fi
    if reachable; then
        want tcp-egress && { log "round $ROUND: $SYS TCP egress (${TCP_T}s)"; measure_tcp tcp_egress sbnS $OUT_IP $IPERF_PORT; }
        want tcp-published && { log "round $ROUND: $SYS TCP published (${TCP_T}s)"; measure_tcp tcp_published sbnO $HOST_IP $PUB_IPERF; }
        want conn-egress && { log "round $ROUND: $SYS connections egress (${CONN_T}s)"; measure_conn conn_egress sbnS $OUT_IP $HTTP_PORT; }
        want conn-published && { log "round $ROUND: $SYS connections published (${CONN_T}s)"; measure_conn conn_published sbnO $HOST_IP $PUB_HTTP; }
        [ "$SYS" = switchyard ] && sy stats --format json >"$ODIR/logs/$TAG-switchyard-stats.json" 2>&1
    else
        log "$SYS: the sandbox cannot reach $OUT_IP:$HTTP_PORT, skipping its metrics"; emit error unreachable
    fi
    [ -n "$SW_PIDS" ] && ! kill -0 $SW_PIDS 2>/dev/null && { log "$SYS: NAT process died"; emit error nat_process_died; }
    teardown
}

run_flows() { # one system, one flow test (DIR:N[:SOURCE_PORTS]), on a fresh setup
    local dir n sp
    IFS=: read -r dir n sp <<<"$1"
    TAG=$ROUND-$SYS-flows-$dir-$n${sp:+-sp$sp}
    log "round $ROUND: $SYS flows: $n UDP $dir${sp:+ from $sp source ports}"
    if ! "setup_${SYS//-/_}"; then log "$SYS: setup failed"; emit error setup_failed; teardown; return; fi
    # one frame from the sandbox first, as any real one sends: pasta learns the sandbox's MAC
    # from it and delivers nothing inbound before (IPv6 is off here, so no NDP/RS does it)
    ip netns exec sbnS ping -n -q -c 1 -W 1 "$SB_GW" >/dev/null 2>&1
    measure_flows "$dir" "$n" "$sp"
    [ -n "$SW_PIDS" ] && ! kill -0 $SW_PIDS 2>/dev/null && { log "$SYS: NAT process died"; emit error nat_process_died; }
    teardown
}

# ------------------------------------------------------------------ main
check_args() {
    local s t
    for s in $SYSTEMS; do
        case " $ALL_SYSTEMS " in *" $s "*) ;; *) die "unknown system '$s' (known: $ALL_SYSTEMS)" ;; esac
    done
    for t in $METRICS; do
        case $t in tcp-egress|tcp-published|conn-egress|conn-published) ;; *) die "unknown metric '$t' (tcp-egress tcp-published conn-egress conn-published)" ;; esac
    done
    local dir n sp
    for t in $FLOW_TESTS; do
        IFS=: read -r dir n sp <<<"$t"
        [[ $t =~ ^(egress|published):[0-9]+(:[0-9]+)?$ ]] || die "bad flow test '$t' (egress:N[:SOURCE_PORTS] or published:N)"
        if [ -z "$sp" ]; then
            [ "$n" -le 120000 ] || die "flow test '$t': at most 120000 flows (60000 source ports)"
            continue
        fi
        [ "$dir" = egress ] || die "flow test '$t': SOURCE_PORTS only for egress (published flows go to two host ports)"
        [ "$sp" -ge 1 ] && [ "$sp" -le 1000 ] && [ $((n % sp)) = 0 ] || die "flow test '$t': SOURCE_PORTS from 1 to 1000, dividing N"
        [ $((n / sp)) -le $((SPREAD_ADDRS * SPREAD_PORTS)) ] || die "flow test '$t': at most $((SPREAD_ADDRS * SPREAD_PORTS)) destinations per source port"
    done
    [ "$ROUNDS" -ge 1 ] 2>/dev/null || die "BENCH_ROUNDS must be >= 1"
}

write_env() {
    {
        echo "date: $(date -Is)"
        echo "command: $CMDLINE"
        echo "host: $(uname -n); kernel $(uname -r); $(nproc) cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
        echo "node: $(node -v 2>/dev/null); iperf3: $(iperf3 --version 2>/dev/null | head -1); $(iptables --version 2>/dev/null); passt $(dpkg-query -W -f='${Version}' passt 2>/dev/null)"
        echo "repo: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain -- src native bin 2>/dev/null | wc -l) changed files under src/native/bin"
        echo "build: newest file in dist/ $(find "$ROOT/dist" -type f -printf '%TY-%Tm-%Td %TH:%TM\n' 2>/dev/null | sort | tail -1), in build/ $(find "$ROOT/build" -name '*.node' -printf '%TY-%Tm-%Td %TH:%TM\n' 2>/dev/null | sort | tail -1); newest file in src/ $(find "$ROOT/src" -type f -printf '%TY-%Tm-%Td %TH:%TM\n' 2>/dev/null | sort | tail -1)"
        echo "open files limit of this shell (inherited by the daemon and pasta): $(ulimit -Sn)/$(ulimit -Hn)"
        echo "knobs: BENCH_ROUNDS=$ROUNDS BENCH_NAT_SYSTEMS='$SYSTEMS' BENCH_TCP_T=$TCP_T BENCH_NAT_CONN_T=$CONN_T BENCH_NAT_CONN_C=$CONN_C BENCH_NAT_METRICS='$METRICS' BENCH_NAT_FLOW_TESTS='$FLOW_TESTS' BENCH_NAT_FLOW_RATE=$FLOW_RATE"
        echo "loadavg at start: $(cat /proc/loadavg)"
        echo "machine busy in the 2 s before start: ${IDLE_CHECK}% (other load skews every figure)"
    } >"$ODIR/env.txt"
}

idle_check() {
    local b0 b1; b0=$(busy_ticks); sleep 2; b1=$(busy_ticks)
    IDLE_CHECK=$(echo "$b0 $b1" | awk '{ if ($4 > $2) printf "%.0f", ($3 - $1) / ($4 - $2) * 100; else print 0 }')
    [ "$IDLE_CHECK" -gt 10 ] && log "warning: the machine is already ${IDLE_CHECK}% busy; results will be noisy"
    return 0
}

main_run() {
    check_args
    bash "$HERE/install-deps.sh" nat || die "install-deps.sh failed"
    mkdir -p "$ODIR/json" "$ODIR/logs"
    rm -f "$ODIR"/json/* "$ODIR"/logs/* "$SUMMARY"
    : >"$ODIR/notes.txt"
    echo "round,system,metric,value" >"$CSV"
    CLEANUP_ON_EXIT=1
    teardown                                  # leftovers of an earlier run
    idle_check
    write_env
    local order t
    for ROUND in $(seq "$ROUNDS"); do
        order=$SYSTEMS                         # odd rounds in list order, even reversed
        [ $((ROUND % 2)) = 0 ] && order=$(echo $SYSTEMS | tr ' ' '\n' | tac | tr '\n' ' ')
        for SYS in $order; do
            [ -n "$METRICS" ] && run_traffic
            for t in $FLOW_TESTS; do run_flows "$t"; done
        done
    done
    echo "loadavg at end: $(cat /proc/loadavg)" >>"$ODIR/env.txt"
    node "$NATB/summarize.mjs" "$CSV" --baseline $BASELINE --env "$ODIR/env.txt" >"$SUMMARY" || die "summarize.mjs failed"
    cat "$SUMMARY"
    log "done: $SUMMARY (raw: $CSV, logs: $ODIR/logs, notes: $ODIR/notes.txt)"
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

[ "$(id -u)" = 0 ] || die "run as root (namespaces, veth, iptables)"
CMDLINE="$0 $*"
case "${1:-run}" in list) echo "$ALL_SYSTEMS"; exit 0 ;; -h|--help|help) sed -n '2,30p' "$0"; exit 0 ;; esac
mkdir -p "$RUN" "$DIR"
touch "$PIDS_FILE"
take_lock "$LOCK_WAIT"
trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

case "${1:-run}" in
    run) main_run ;;
    setup)
        SYS=${2:-}; [ -n "$SYS" ] || die "usage: $0 setup SYSTEM"
        SYSTEMS=$SYS; FLOW_TESTS=""; check_args
        mkdir -p "$ODIR/logs" "$ODIR/json"; TAG=setup; ROUND=setup; CSV=/dev/null
        CLEANUP_ON_EXIT=1
        teardown
        "setup_${SYS//-/_}" || die "setup of $SYS failed"
        start_servers || die "servers failed"
        CLEANUP_ON_EXIT=0
        echo "$SYS is up: sandbox sbnS (gateway $SB_GW), outside sbnO $OUT_IP, host $HOST_IP; NAT pids: ${SW_PIDS:-none}"
        echo "$NOTE"
        echo "  e.g. ip netns exec sbnS iperf3 -c $OUT_IP; ip netns exec sbnO iperf3 -c $HOST_IP -p $PUB_IPERF"
        echo "remove it with: bash $0 teardown" ;;
    teardown) teardown ;;
    *) die "unknown command '$1' (run, setup SYSTEM, teardown, list)" ;;
esac
