#!/usr/bin/env bash
# Installs the Debian packages Switchyard's demo, tests and benchmarks drive: iproute2 for
# namespaces, ping/iperf3/dig/tcpdump for traffic, busybox for udhcpc, etcd for the cluster
# store. Idempotent and quiet when everything is already there.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have ping || need+=(iputils-ping)
have iperf3 || need+=(iperf3)
have tcpdump || need+=(tcpdump)
have dig || need+=(dnsutils)
have ethtool || need+=(ethtool)
have nsenter || need+=(util-linux)
have busybox || need+=(busybox-static)
have python3 || need+=(python3)
have make || need+=(make)
have g++ || need+=(g++)
have etcdctl || need+=(etcd-client)
# io_uring for batched TAP reads and writes in the addon
[ -e /usr/include/liburing.h ] || need+=(liburing-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The tests start their own etcd inside their namespaces: keep the package's system service
# from starting on install (policy-rc.d 101 = "do not start").
if ! have etcd; then
  echo "installing: etcd-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi
