#!/usr/bin/env bash
# Install what bench/run.sh needs, from Debian/Ubuntu packages, if missing.
#
#   bash bench/install-deps.sh [SYSTEM...]     (run as root)
#
# Idempotent and silent when everything is there; runs `apt-get update` only
# when something has to be installed.  SYSTEM names (as in BENCH_SYSTEMS) add
# what that system needs; run.sh passes its system list.  Node.js >= 20 is not
# installed here (the project itself needs it: see the top-level README).
set -eu

# command -> Debian package
need=(
    "iperf3:iperf3"
    "ip:iproute2"
    "ss:iproute2"
    "ping:iputils-ping"
    "gcc:gcc"
    "ethtool:ethtool"
    "flock:util-linux"
    "timeout:coreutils"
    "awk:gawk"
)
for sys in "$@"; do
    case "$sys" in
        ovs|ovs-tso) need+=("ovs-vswitchd:openvswitch-switch" "ovsdb-tool:openvswitch-common") ;;
        vde) need+=("vde_switch:vde2") ;;
        dns) need+=("dnsperf:dnsperf" "dnsmasq:dnsmasq-base" "dig:dnsutils") ;;   # bench/dns.sh
        nat) need+=("iptables:iptables" "pasta:passt") ;;   # bench/nat.sh
    esac
done

missing=()
for pair in "${need[@]}"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done
# gcc without libc headers cannot build cgen.c
if command -v gcc >/dev/null 2>&1 && [ ! -f /usr/include/linux/if_packet.h ]; then
    missing+=("linux-libc-dev" "libc6-dev")
fi

[ ${#missing[@]} = 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: missing ${missing[*]}; run as root to install them" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: missing ${missing[*]} and no apt-get here; install them by hand" >&2
    exit 1
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
