#!/usr/bin/env bash
# Switchyard's embedded DNS next to dnsmasq, in one run, side by side, measured
# with dnsperf from the same client sandbox.  Run as root.  See bench/README.md
# ("Embedded DNS vs dnsmasq").
#
#   bash bench/dns.sh [run]       measure (npm run bench:dns)
#   bash bench/dns.sh setup       build the topology and leave it up to poke at
#   bash bench/dns.sh teardown    remove everything this script creates
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_DNS_T (10 s per dnsperf run),
# BENCH_DNS_RATE (2000 q/s, the fixed-rate latency test), BENCH_DNS_CLIENTS (4,
# dnsperf -c), BENCH_DNS_OUTSTANDING (100, dnsperf -q), BENCH_DNS_TIMEOUT (2 s,
# dnsperf -t), BENCH_DNS_NAMES (1000 forwarded names), BENCH_DNS_MIXES ("local
# cached"), BENCH_DNS_LOADS ("max rate"), BENCH_DNS_SYSTEMS ("switchyard
# dnsmasq"), BENCH_DNS_UPSTREAM_PORT (53530), BENCH_DNS_DAEMON_ARGS (extra
# daemon options, e.g. "--busy-poll 0"), BENCH_OUT (bench/out), BENCH_RUN
# (/tmp/switchyard-bench: its lock is shared with bench/run.sh).
#
# Topology (everything named sbdns*):
#   - Switchyard daemon in the root netns (network "default" 10.78.0.0/24, DNS at
#     the gateway 10.78.0.1), upstream --dns 127.0.0.1:$UP_PORT = a dnsmasq of
#     ours on the root netns' loopback answering *.bench.test.
#   - Switchyard sandboxes sbdnsA (the client, 10.78.0.2) and sbdnsweb, sbdnsapi,
#     sbdnsdb, sbdnscache (10.78.0.11-14) with aliases: the local names.
#   - netns sbdnsS: the peer dnsmasq on 10.79.0.1:53 (same local names from an
#     --addn-hosts file, other names forwarded to a second upstream dnsmasq on
#     sbdnsS's own loopback and cached), reached from sbdnsA over the veth pair
#     sbdnsA:sbdnsv0 10.79.0.2 <-> sbdnsS:sbdnsv1 10.79.0.1.
# No query leaves the machine: upstreams answer bench.test themselves and
# forward nothing.  Every process started is recorded (PID + start time) and
# killed by PID; teardown runs on exit, error and Ctrl-C.
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

ROUNDS=${BENCH_ROUNDS:-3}
DNS_T=${BENCH_DNS_T:-10}
RATE=${BENCH_DNS_RATE:-2000}
CLIENTS=${BENCH_DNS_CLIENTS:-4}
OUTSTANDING=${BENCH_DNS_OUTSTANDING:-100}
QTIMEOUT=${BENCH_DNS_TIMEOUT:-2}
NAMES=${BENCH_DNS_NAMES:-1000}
MIXES=${BENCH_DNS_MIXES:-local cached}
LOADS=${BENCH_DNS_LOADS:-max rate}
SYSTEMS=${BENCH_DNS_SYSTEMS:-switchyard dnsmasq}
UP_PORT=${BENCH_DNS_UPSTREAM_PORT:-53530}
DAEMON_ARGS=${BENCH_DNS_DAEMON_ARGS:-}   # extra daemon options, e.g. "--busy-poll 0"
OUT=$(realpath -m "${BENCH_OUT:-$HERE/out}")
RUN=$(realpath -m "${BENCH_RUN:-/tmp/switchyard-bench}")

DIR=$RUN/dns                       # scratch: pids, query files, dnsmasq files, daemon state
ODIR=$OUT/dns                      # raw.csv, env.txt, notes.txt, logs/
SUMMARY=$OUT/dns-summary.md
PIDS_FILE=$DIR/pids                # "PID STARTTIME" per process we started
SY="node $ROOT/bin/switchyard.js"
SY_SOCK=$DIR/sy/sock

SUBNET=10.78.0.0/24
SY_DNS=10.78.0.1                   # Switchyard's gateway: its DNS
PEER_DNS=10.79.0.1                 # dnsmasq in sbdnsS
CLIENT_VETH_IP=10.79.0.2
CLIENT=sbdnsA
CLIENT_IP=10.78.0.2
# sandbox  address  aliases (the local names are the sandbox names and aliases)
SANDBOXES="sbdnsweb:10.78.0.11:www,web,frontend
sbdnsapi:10.78.0.12:api,backend
sbdnsdb:10.78.0.13:db,postgres
sbdnscache:10.78.0.14:cache,redis"
NETNS_LIST="sbdnsA sbdnsweb sbdnsapi sbdnsdb sbdnscache sbdnsS"
FWD_ZONE=bench.test
FWD_ADDR=192.0.2.1

# shellcheck source=lib.sh
. "$HERE/lib.sh"

# ------------------------------------------------------------------ helpers
ns_exists() { [ -e "/run/netns/$1" ]; }
sy() { timeout 20 $SY --socket "$SY_SOCK" "$@"; }

# a `dig` from the client sandbox: SERVER NAME -> "name ttl A addr" lines, sorted
dig_from_client() {
    ip netns exec "$CLIENT" dig +time=2 +tries=1 +norecurse +noall +answer "@$1" "$2" A 2>/dev/null |
        awk '$4 == "A" { print $1, $2, $5 }' | sort
}

# ------------------------------------------------------------------ dnsmasq
# start_dnsmasq NAME NETNS ARGS...: a dnsmasq of ours in the foreground
# (recorded by PID), no config file, no /etc/hosts, no resolv.conf, bound only
# to the addresses in ARGS (--bind-interfaces + --listen-address).  Sets DM_PID.
DM_PID=""
start_dnsmasq() {
    local name=$1 ns=$2; shift 2
    local nsexec=(); [ "$ns" != root ] && nsexec=(ip netns exec "$ns")
    "${nsexec[@]}" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-hosts --no-resolv \
        --bind-interfaces --pid-file="$DIR/dnsmasq-$name.pid" --log-facility="$ODIR/logs/dnsmasq-$name.log" \
        --local-ttl=600 "$@" >"$ODIR/logs/dnsmasq-$name.out" 2>&1 9>&- &
    DM_PID=$!
    remember_pid "$DM_PID"
    echo "$DM_PID" >"$DIR/dnsmasq-$name.mypid"
}

# wait_dns NETNS SERVER PORT NAME: until SERVER answers NAME (<= 10 s)
wait_dns() {
    local ns=$1 server=$2 port=$3 name=$4 nsexec=()
    [ "$ns" != root ] && nsexec=(ip netns exec "$ns")
    for _ in $(seq 50); do
        "${nsexec[@]}" dig +time=1 +tries=1 +short -p "$port" "@$server" "$name" A 2>/dev/null | grep -q . && return 0
        sleep 0.2
    done
    return 1
}

# check_binds NETNS PID EXPECTED...: the sockets PID listens on are exactly
# EXPECTED (addr:port, UDP and TCP); anything else is an error.
check_binds() {
    local ns=$1 pid=$2; shift 2
    local nsexec=(); [ "$ns" != root ] && nsexec=(ip netns exec "$ns")
    local got want
    got=$("${nsexec[@]}" ss -Hlnup 2>/dev/null | grep "pid=$pid," | awk '{print "udp " $4}'
          "${nsexec[@]}" ss -Hltnp 2>/dev/null | grep "pid=$pid," | awk '{print "tcp " $4}')
    got=$(echo "$got" | sort -u | tr '\n' ' ')
    want=$(for a in "$@"; do echo "udp $a"; echo "tcp $a"; done | sort -u | tr '\n' ' ')
    if [ "$got" != "$want" ]; then
        log "dnsmasq pid $pid in $ns listens on [$got], expected [$want]"
        return 1
    fi
}

# ------------------------------------------------------------------ setup
SY_PID=""; PEER_PID=""; UP_ROOT_PID=""; UP_PEER_PID=""

write_query_files() {
    local names="$CLIENT" sb n ip al
    while IFS=: read -r sb ip al; do names="$names $sb ${al//,/ }"; done <<<"$SANDBOXES"
    : >"$DIR/q-local.txt"
    for n in $names; do echo "$n A" >>"$DIR/q-local.txt"; done
    seq -f "n%05g.$FWD_ZONE A" 1 "$NAMES" >"$DIR/q-cached.txt"
    # the peer's copy of Switchyard's names: same names, same addresses
    {
        echo "$CLIENT_IP $CLIENT"
        while IFS=: read -r sb ip al; do echo "$ip $sb ${al//,/ }"; done <<<"$SANDBOXES"
    } >"$DIR/hosts"
}

setup() {
    [ -f "$ROOT/dist/cli/main.js" ] || { log "switchyard is not built ($ROOT/dist/cli/main.js missing): run 'npm run build' first"; return 1; }
    local c
    for c in dnsperf dnsmasq dig ip ss; do command -v $c >/dev/null || { log "$c missing: bash bench/install-deps.sh dns"; return 1; }; done
    mkdir -p "$DIR" "$ODIR/logs"
    rm -rf "$DIR/sy"; mkdir -p "$DIR/sy/state"
    write_query_files
    if ss -Hlun "sport = :$UP_PORT" | grep -q . || ss -Hltn "sport = :$UP_PORT" | grep -q .; then
        log "port $UP_PORT is in use in the root netns: set BENCH_DNS_UPSTREAM_PORT"; return 1
    fi

    # Switchyard's upstream: root netns, loopback only.
    start_dnsmasq up-root root --port="$UP_PORT" --listen-address=127.0.0.1 --cache-size=0 \
        --address="/$FWD_ZONE/$FWD_ADDR"
    UP_ROOT_PID=$DM_PID
    wait_dns root 127.0.0.1 "$UP_PORT" "n1.$FWD_ZONE" || { log "upstream dnsmasq (root netns) does not answer; $(tail -3 "$ODIR/logs/dnsmasq-up-root.out")"; return 1; }
    check_binds root "$UP_ROOT_PID" "127.0.0.1:$UP_PORT" || return 1

    # The daemon.  --dns is what keeps forwarded queries on this machine.
    $SY --socket "$SY_SOCK" daemon --state-dir "$DIR/sy/state" --default-subnet "$SUBNET" \
        --dns "127.0.0.1:$UP_PORT" $DAEMON_ARGS >"$ODIR/logs/switchyard-daemon.log" 2>&1 9>&- &
    SY_PID=$!
    remember_pid "$SY_PID"
    echo "$SY_PID" >"$DIR/sy/pid"
    local ok=0
    for _ in $(seq 100); do
        kill -0 "$SY_PID" 2>/dev/null || { log "switchyard daemon exited: $(tail -3 "$ODIR/logs/switchyard-daemon.log")"; return 1; }
        if sy stats >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ $ok = 1 ] || { log "switchyard daemon not ready after 20 s"; return 1; }
    local gw
    gw=$(sy network inspect default | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].gateway))')
    [ "$gw" = "$SY_DNS" ] || { log "network default has gateway '$gw', expected $SY_DNS"; return 1; }

    : >"$DIR/taps"
    sy sandbox create "$CLIENT" --network default --ip "$CLIENT_IP" >"$DIR/sy/create-$CLIENT.out" 2>&1 ||
        { log "sandbox create $CLIENT failed: $(tail -3 "$DIR/sy/create-$CLIENT.out")"; return 1; }
    local sb ip al a args
    while IFS=: read -r sb ip al; do
        args=(); for a in ${al//,/ }; do args+=(--alias "$a"); done
        { sy sandbox create "$sb" && sy network connect default "$sb" --ip "$ip" "${args[@]}"; } >"$DIR/sy/create-$sb.out" 2>&1 ||
            { log "sandbox $sb failed: $(tail -3 "$DIR/sy/create-$sb.out")"; return 1; }
    done <<<"$SANDBOXES"
    sy network inspect default | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
        for (const e of JSON.parse(s)[0].endpoints) console.log("sy" + e.id.slice(0, 10)) })' >"$DIR/taps"

    # The peer: netns sbdnsS, veth to the client, an upstream on its loopback,
    # dnsmasq on 10.79.0.1:53.
    ip netns add sbdnsS || return 1
    ip -n sbdnsS link set lo up
    ip netns exec sbdnsS sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip link add sbdnsv0 netns "$CLIENT" type veth peer name sbdnsv1 netns sbdnsS || return 1
    ip netns exec "$CLIENT" sysctl -qw net.ipv6.conf.sbdnsv0.disable_ipv6=1
    ip -n "$CLIENT" addr add "$CLIENT_VETH_IP/24" dev sbdnsv0 && ip -n "$CLIENT" link set sbdnsv0 up || return 1
    ip -n sbdnsS addr add "$PEER_DNS/24" dev sbdnsv1 && ip -n sbdnsS link set sbdnsv1 up || return 1

    start_dnsmasq up-peer sbdnsS --port="$UP_PORT" --listen-address=127.0.0.1 --cache-size=0 \
        --address="/$FWD_ZONE/$FWD_ADDR"
    UP_PEER_PID=$DM_PID
    wait_dns sbdnsS 127.0.0.1 "$UP_PORT" "n1.$FWD_ZONE" || { log "upstream dnsmasq (sbdnsS) does not answer"; return 1; }
    check_binds sbdnsS "$UP_PEER_PID" "127.0.0.1:$UP_PORT" || return 1
    # --dns-forward-max like Switchyard's in-flight limit (1024); cache 10000
    # entries (Switchyard: 4096), both far above the $NAMES forwarded names.
    start_dnsmasq peer sbdnsS --port=53 --listen-address="$PEER_DNS" --cache-size=10000 \
        --dns-forward-max=1024 --addn-hosts="$DIR/hosts" --server="127.0.0.1#$UP_PORT"
    PEER_PID=$DM_PID
    wait_dns "$CLIENT" "$PEER_DNS" 53 www || { log "peer dnsmasq does not answer from $CLIENT"; return 1; }
    check_binds sbdnsS "$PEER_PID" "$PEER_DNS:53" || return 1
    wait_dns "$CLIENT" "$SY_DNS" 53 www || { log "switchyard DNS does not answer from $CLIENT"; return 1; }
    return 0
}

# Both servers must give the same answers: every local name, and a sample of
# forwarded ones (addresses compared; TTLs written to notes).
check_same_data() {
    local n a b bad=0 names
    names=$(awk '{print $1}' "$DIR/q-local.txt"; awk 'NR <= 3 {print $1}' "$DIR/q-cached.txt")
    for n in $names; do
        a=$(dig_from_client "$SY_DNS" "$n"); b=$(dig_from_client "$PEER_DNS" "$n")
        echo "check $n: switchyard [$(echo $a)] dnsmasq [$(echo $b)]" >>"$ODIR/notes.txt"
        if [ -z "$a" ] || [ "$(echo "$a" | awk '{print $1, $3}')" != "$(echo "$b" | awk '{print $1, $3}')" ]; then
            log "answers differ for $n: switchyard [$(echo $a)] dnsmasq [$(echo $b)]"; bad=1
        fi
    done
    return $bad
}

# ------------------------------------------------------------------ teardown
teardown() {
    local pid s
    [ -n "$SY_PID" ] || { [ -s "$DIR/sy/pid" ] && SY_PID=$(cat "$DIR/sy/pid"); }
    if [ -n "$SY_PID" ] && grep -q "^$SY_PID " "$PIDS_FILE" 2>/dev/null && kill -0 "$SY_PID" 2>/dev/null; then
        # let the daemon remove its sandboxes (namespaces, TAPs, /etc/netns/NAME)
        for s in $NETNS_LIST; do
            [ "$s" = sbdnsS ] && continue
            sy sandbox rm "$s" >/dev/null 2>&1
        done
        stop_pid "$SY_PID" 5
    fi
    SY_PID=""
    kill_ours
    for s in $NETNS_LIST; do
        ns_exists "$s" && { ip netns del "$s" || log "could not delete netns $s"; }
        [ -d "/etc/netns/$s" ] && rm -rf "/etc/netns/$s"
    done
    rm -rf "$DIR/sy"
    rm -f "$DIR"/dnsmasq-*.pid "$DIR"/dnsmasq-*.mypid "$DIR"/client.pid
    # our daemon's TAPs (sy + endpoint ID) normally die with the sandboxes; one
    # left in the root netns (a failed move) is removed here
    if [ -s "$DIR/taps" ]; then
        for s in $(cat "$DIR/taps"); do
            ip link show "$s" >/dev/null 2>&1 && { log "removing leftover TAP $s"; ip link del "$s" 2>/dev/null; }
        done
    fi
    rm -f "$DIR/taps"
    SY_PID=""; PEER_PID=""; UP_ROOT_PID=""; UP_PEER_PID=""
    return 0
}

# ------------------------------------------------------------------ metrics
CSV=$ODIR/raw.csv
emit() { echo "$ROUND,$SYS,${MIX}_${LOAD}_$1,$2" >>"$CSV"; }

cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8, $8}' /proc/stat; }

# Switchyard's DNS counters (GET /v1/stats .dns, straight from the API socket
# with Node's http: independent of dist/ and the addon, which another build may
# be rewriting), one "k=v" per line; retried for up to ~5 s, empty on failure
sy_dns_counters() {
    local out
    for _ in 1 2 3 4 5; do
        out=$(timeout 5 node -e '
            const req = require("http").get({ socketPath: process.argv[1], path: "/v1/stats" }, (res) => {
                let s = ""; res.on("data", (d) => (s += d)).on("end", () => {
                    try { for (const [k, v] of Object.entries(JSON.parse(s).dns)) console.log(k + "=" + v) } catch { process.exit(1) } })
            }); req.on("error", () => process.exit(1))' "$SY_SOCK" 2>/dev/null) && [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 1
    done
    log "warning: could not read switchyard's DNS counters"
    return 1
}
# dnsmasq's own counters: SIGUSR1 writes them to its log; "forwarded local"
dm_counters() {
    local f=$ODIR/logs/dnsmasq-peer.log n0 n1
    n0=$(grep -c 'queries forwarded' "$f" 2>/dev/null)
    kill -USR1 "$PEER_PID" 2>/dev/null || return 0
    for _ in $(seq 40); do
        n1=$(grep -c 'queries forwarded' "$f" 2>/dev/null)
        [ "${n1:-0}" -gt "${n0:-0}" ] && break
        sleep 0.05
    done
    grep 'queries forwarded' "$f" | tail -1 | sed -E 's/.*queries forwarded ([0-9]+), queries answered locally ([0-9]+).*/\1 \2/'
}

# run_client OUTFILE ERRFILE DNSPERF_ARGS...: dnsperf in the client sandbox,
# in the background (recorded by PID, so teardown can stop it), waited for.
# Its CPU time (ticks) is left in CLIENT_TICKS.
run_client() {
    local o=$1 e=$2; shift 2
    ip netns exec "$CLIENT" dnsperf "$@" >"$o" 2>"$e" 9>&- &
    local pid=$! st ticks=0
    remember_pid "$pid"
    st=$(proc_start "$pid")
    # sample its CPU time until it exits (the last sample is <= 0.2 s old)
    while ours_alive "$pid" "$st"; do
        ticks=$(cpu_ticks "$pid"); sleep 0.2
    done
    wait "$pid"; local rc=$?
    CLIENT_TICKS=$ticks
    return $rc
}

# dnsperf's summary -> "key value" lines
parse_dnsperf() {
    awk '
        /Queries sent:/      { print "sent", $3 }
        /Queries completed:/ { print "completed", $3 }
        /Queries lost:/      { print "lost", $3; gsub(/[()%]/, "", $4); print "lost_pct", $4 }
        /Response codes:/    { s = $0; sub(/.*Response codes: /, "", s); n = split(s, a, /, /)
                               for (i = 1; i <= n; i++) { split(a[i], b, " "); gsub(/[()%]/, "", b[3]); print "rcode_" b[1] "_pct", b[3] } }
        /Run time \(s\):/    { print "runtime", $4 }
        /Queries per second:/ { print "qps", $4 }
        /Average Latency \(s\):/ { print "lat_avg_us", $4 * 1e6; gsub(/[(,]/, "", $6); print "lat_min_us", $6 * 1e6; gsub(/[),]/, "", $8); print "lat_max_us", $8 * 1e6 }
        /Latency StdDev \(s\):/ { print "lat_sd_us", $4 * 1e6 }
    ' "$1"
}

# per-query latencies of a -v run -> p50 p99 p99.9 (us)
percentiles() {
    awk '$1 == ">" && NF >= 5 { print $NF * 1e6 }' "$1" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan nan nan"; exit }
             p = NR * 0.50; i50 = (p == int(p)) ? p : int(p) + 1
             p = NR * 0.99; i99 = (p == int(p)) ? p : int(p) + 1
             p = NR * 0.999; i999 = (p == int(p)) ? p : int(p) + 1
             printf "%.0f %.0f %.0f %d\n", v[i50], v[i99], v[i999], NR }'
}

server_of() { [ "$1" = switchyard ] && echo "$SY_DNS" || echo "$PEER_DNS"; }
server_pid() { [ "$1" = switchyard ] && echo "$SY_PID" || echo "$PEER_PID"; }

# measure: SYS MIX LOAD (globals) -> lines in raw.csv
measure() {
    local server pid qf tag args
    server=$(server_of "$SYS"); pid=$(server_pid "$SYS"); qf=$DIR/q-$MIX.txt
    tag=$ROUND-$SYS-$MIX-$LOAD
    args=(-s "$server" -d "$qf" -l "$DNS_T" -c "$CLIENTS" -q "$OUTSTANDING" -t "$QTIMEOUT")
    [ "$LOAD" = rate ] && args+=(-Q "$RATE" -v)
    local sy0="" sy1="" dm0="" dm1=""
    [ "$SYS" = switchyard ] && sy0=$(sy_dns_counters)
    [ "$SYS" = dnsmasq ] && dm0=$(dm_counters)
    local c0 b0 t0 c1 b1 t1
    emit loadavg1 "$(cut -d' ' -f1 /proc/loadavg)"
    c0=$(cpu_ticks "$pid"); b0=$(busy_ticks); t0=$(now)
    run_client "$ODIR/logs/$tag.txt" "$ODIR/logs/$tag.err" "${args[@]}"
    local rc=$?
    c1=$(cpu_ticks "$pid"); b1=$(busy_ticks); t1=$(now)
    [ "$SYS" = switchyard ] && sy1=$(sy_dns_counters)
    [ "$SYS" = dnsmasq ] && dm1=$(dm_counters)
    if [ $rc != 0 ] || ! grep -q 'Queries per second' "$ODIR/logs/$tag.txt"; then
        log "$SYS $MIX $LOAD: dnsperf failed (rc $rc): $(head -c 300 "$ODIR/logs/$tag.err")"
        emit error dnsperf_failed; return 1
    fi
    local wall k v
    wall=$(calc "printf \"%.3f\", $t1 - $t0")
    while read -r k v; do emit "$k" "$v"; done < <(parse_dnsperf "$ODIR/logs/$tag.txt")
    local qps completed
    qps=$(awk '/Queries per second:/ {print $4}' "$ODIR/logs/$tag.txt")
    completed=$(awk '/Queries completed:/ {print $3}' "$ODIR/logs/$tag.txt")
    emit server_cpu_pct "$(calc "printf \"%.1f\", ($c1 - $c0) / $HZ / $wall * 100")"
    emit server_cpu_us_per_q "$(calc "if ($completed > 0) printf \"%.2f\", ($c1 - $c0) / $HZ / $completed * 1e6; else print \"nan\"")"
    local rt; rt=$(awk '/Run time \(s\):/ {print $4}' "$ODIR/logs/$tag.txt")
    emit client_cpu_pct "$(calc "printf \"%.1f\", $CLIENT_TICKS / $HZ / ${rt:-$wall} * 100")"
    emit busy_pct "$(echo "$b0 $b1" | awk '{ if ($5 > $2) printf "%.1f", ($4 - $1) / ($5 - $2) * 100; else print "nan" }')"
    emit softirq_pct "$(echo "$b0 $b1" | awk '{ if ($5 > $2) printf "%.1f", ($6 - $3) / ($5 - $2) * 100; else print "nan" }')"
    if [ "$LOAD" = rate ]; then
        set -- $(percentiles "$ODIR/logs/$tag.txt")
        emit lat_p50_us "$1"; emit lat_p99_us "$2"; emit lat_p999_us "$3"
        # keep the summary, drop the per-query lines (they are large)
        grep -v '^> ' "$ODIR/logs/$tag.txt" >"$ODIR/logs/$tag.txt.tmp" && mv "$ODIR/logs/$tag.txt.tmp" "$ODIR/logs/$tag.txt"
    fi
    if [ "$SYS" = switchyard ]; then   # what the daemon says it did: deltas of its DNS counters
        local a b
        for k in queries answeredLocal forwarded cacheHits dropped refused servfail formerr; do
            a=$(echo "$sy0" | awk -F= -v k=$k '$1 == k {print $2}'); b=$(echo "$sy1" | awk -F= -v k=$k '$1 == k {print $2}')
            if [ -n "$a" ] && [ -n "$b" ]; then emit "sy_$k" $((b - a)); else emit "sy_$k" nan; fi
        done
        emit sy_cache_entries "$(echo "$sy1" | awk -F= '$1 == "cacheEntries" {print $2}')"
    fi
    if [ "$SYS" = dnsmasq ] && [ -n "$dm0" ] && [ -n "$dm1" ]; then
        set -- $dm0 $dm1
        emit dm_forwarded $(($3 - $1)); emit dm_answered_locally $(($4 - $2))
    fi
    if [ -n "$SY_PID" ] && ! kill -0 "$SY_PID" 2>/dev/null; then log "switchyard daemon died"; emit error switch_died; return 1; fi
    return 0
}

warm_up() {
    # one paced pass over the forwarded names fills both caches, then a short
    # unpaced run of each mix warms the JIT and the sockets
    local SYS MIX LOAD server
    for SYS in $SYSTEMS; do
        server=$(server_of "$SYS")
        log "warm-up: $SYS: fill the cache ($NAMES names), 3 s of each mix"
        run_client "$ODIR/logs/warm-$SYS-fill.txt" "$ODIR/logs/warm-$SYS-fill.err" \
            -s "$server" -d "$DIR/q-cached.txt" -n 1 -Q 2000 -c 1 -t 3
        grep -E 'Queries (completed|lost)|Response codes' "$ODIR/logs/warm-$SYS-fill.txt" | sed "s/^/warm-up $SYS fill: /" >>"$ODIR/notes.txt"
        for MIX in $MIXES; do
            run_client "$ODIR/logs/warm-$SYS-$MIX.txt" "$ODIR/logs/warm-$SYS-$MIX.err" \
                -s "$server" -d "$DIR/q-$MIX.txt" -l 3 -c "$CLIENTS" -q "$OUTSTANDING" -t "$QTIMEOUT"
        done
    done
    if echo " $SYSTEMS " | grep -q ' switchyard '; then
        echo "switchyard DNS counters after warm-up: $(sy_dns_counters | tr '\n' ' ')" >>"$ODIR/notes.txt"
    fi
}

# ------------------------------------------------------------------ main
write_env() {
    {
        echo "date: $(date -Is)"
        echo "command: $CMDLINE"
        echo "host: $(uname -n); kernel $(uname -r); $(nproc) cpus; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
        echo "node: $(node -v 2>/dev/null); dnsperf: $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}'); dnsmasq: $(dnsmasq --version | head -1 | awk '{print $3}')"
        echo "repo: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain -- src native bin 2>/dev/null | wc -l) changed files under src/native/bin; dist/ built $(date -r "$ROOT/dist/cli/main.js" -Is 2>/dev/null), addon $(date -r "$ROOT/build/Release/switchyard.node" -Is 2>/dev/null)"
        echo "knobs: BENCH_ROUNDS=$ROUNDS BENCH_DNS_T=$DNS_T BENCH_DNS_RATE=$RATE BENCH_DNS_CLIENTS=$CLIENTS BENCH_DNS_OUTSTANDING=$OUTSTANDING BENCH_DNS_TIMEOUT=$QTIMEOUT BENCH_DNS_NAMES=$NAMES BENCH_DNS_MIXES='$MIXES' BENCH_DNS_LOADS='$LOADS' BENCH_DNS_SYSTEMS='$SYSTEMS' BENCH_DNS_DAEMON_ARGS='$DAEMON_ARGS'"
        echo "loadavg at start: $(cat /proc/loadavg)"
        echo "machine busy in the 2 s before start: ${IDLE_CHECK}%"
    } >"$ODIR/env.txt"
}

build_stamp() { stat -c '%n@%Y' "$ROOT/dist/daemon/daemon.js" "$ROOT/dist/gateway/dns/server.js" "$ROOT/build/Release/switchyard.node" 2>/dev/null | tr '\n' ' '; }

idle_check() {
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
        rm -rf "$DIR"                         # query files, hosts, pid list
    fi
    exit $rc
}
on_signal() { log "interrupted ($1)"; exit 130; }

main_run() {
    [ "$ROUNDS" -ge 1 ] 2>/dev/null || die "BENCH_ROUNDS must be >= 1"
    local s
    for s in $SYSTEMS; do case $s in switchyard|dnsmasq) ;; *) die "unknown system '$s' (switchyard, dnsmasq)" ;; esac; done
    for s in $MIXES; do case $s in local|cached) ;; *) die "unknown mix '$s' (local, cached)" ;; esac; done
    for s in $LOADS; do case $s in max|rate) ;; *) die "unknown load '$s' (max, rate)" ;; esac; done
    bash "$HERE/install-deps.sh" dns || die "install-deps.sh failed"
    mkdir -p "$ODIR/logs"
    rm -f "$ODIR"/logs/* "$SUMMARY"
    : >"$ODIR/notes.txt"
    echo "round,system,metric,value" >"$CSV"
    CLEANUP_ON_EXIT=1
    teardown                                  # leftovers of an earlier run
    idle_check
    write_env
    BUILD0=$(build_stamp)
    log "setup: switchyard daemon + sandboxes, peer dnsmasq in sbdnsS"
    setup || die "setup failed"
    echo "switchyard: daemon pid $SY_PID, DNS at $SY_DNS, upstream dnsmasq pid $UP_ROOT_PID on 127.0.0.1:$UP_PORT (root netns)" >>"$ODIR/notes.txt"
    echo "dnsmasq: peer pid $PEER_PID at $PEER_DNS:53 in sbdnsS, upstream dnsmasq pid $UP_PEER_PID on 127.0.0.1:$UP_PORT (sbdnsS)" >>"$ODIR/notes.txt"
    check_same_data || die "the two servers do not give the same answers (see $ODIR/notes.txt)"
    warm_up
    local order
    for ROUND in $(seq "$ROUNDS"); do
        order=$SYSTEMS
        [ $((ROUND % 2)) = 0 ] && order=$(echo $SYSTEMS | tr ' ' '\n' | tac | tr '\n' ' ')
        for MIX in $MIXES; do
            for LOAD in $LOADS; do
                for SYS in $order; do
                    log "round $ROUND: $SYS, $MIX names, $([ "$LOAD" = max ] && echo "max rate" || echo "$RATE q/s") (${DNS_T}s)"
                    measure
                    sleep 1
                done
            done
        done
    done
    echo "loadavg at end: $(cat /proc/loadavg)" >>"$ODIR/env.txt"
    local changed
    changed=$(echo "$BUILD0 $(build_stamp)" | tr ' ' '\n' | grep . | sort | uniq -u | sed 's/@.*//' | sort -u |
        while read -r f; do echo "${f#"$ROOT"/} ($(date -r "$f" +%H:%M:%S))"; done | tr '\n' ' ')
    if [ -n "$changed" ]; then
        log "warning: rebuilt during the run: $changed(the daemon kept what it loaded at start)"
        echo "warning: rebuilt during the run by something else: ${changed}(the daemon kept the code it loaded at start)" >>"$ODIR/env.txt"
    fi
    sy stats >"$ODIR/logs/switchyard-stats.txt" 2>&1
    sy --format json stats >"$ODIR/logs/switchyard-stats.json" 2>&1
    dm_counters >/dev/null
    grep -iE 'warn|error' "$ODIR/logs/switchyard-daemon.log" | head -20 >"$ODIR/logs/switchyard-daemon-warnings.txt"
    teardown
    node "$HERE/dns-summarize.mjs" "$CSV" --env "$ODIR/env.txt" --notes "$ODIR/notes.txt" >"$SUMMARY" ||
        die "dns-summarize.mjs failed"
    cat "$SUMMARY"
    log "done: $SUMMARY (raw: $CSV, logs: $ODIR/logs, notes: $ODIR/notes.txt)"
}

[ "$(id -u)" = 0 ] || die "run as root (namespaces, veth, TAP)"
CMDLINE="$0 $*"
mkdir -p "$RUN" "$DIR"
touch "$PIDS_FILE"
exec 9>"$RUN/lock"
flock -n 9 || die "another benchmark holds $RUN/lock; never run two benchmarks at once"
trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

case "${1:-run}" in
    run) main_run ;;
    setup)
        mkdir -p "$ODIR/logs"; : >>"$ODIR/notes.txt"
        CLEANUP_ON_EXIT=1
        teardown
        setup || die "setup failed"
        check_same_data || log "warning: the two servers' answers differ"
        CLEANUP_ON_EXIT=0
        echo "up: from netns $CLIENT, Switchyard DNS at $SY_DNS, dnsmasq at $PEER_DNS; query files $DIR/q-local.txt $DIR/q-cached.txt"
        echo "  e.g. ip netns exec $CLIENT dnsperf -s $SY_DNS -d $DIR/q-local.txt -l 5"
        echo "remove it with: bash $0 teardown" ;;
    teardown) teardown; rm -rf "$DIR" ;;
    -h|--help|help) sed -n '2,31p' "$0" ;;
    *) die "unknown command '$1' (run, setup, teardown)" ;;
esac
