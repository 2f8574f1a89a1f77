#!/usr/bin/env bash
# Installs the container engines the end-to-end tests drive (test/integration/docker.test.ts
# and podman.test.ts call it): Debian's docker.io (dockerd, containerd, runc and the API 1.41
# client at /usr/bin/docker), podman 4.3 with the CNI reference plugins (netavark is not
# installed, so podman uses CNI), and busybox-static for the containers' root filesystems.
# Idempotent, and quiet unless something fails.
#
# The docker.io package must not start a dockerd of its own (one with default settings
# writes iptables rules): the image's policy-rc.d keeps it from doing so, and this script
# checks that it did not.
set -euo pipefail
need=()
{ [ -x /usr/bin/docker ] && [ -x /usr/sbin/dockerd ]; } || need+=(docker.io)
[ -x /usr/bin/podman ] || need+=(podman)
[ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
[ ${#need[@]} -gt 0 ] || exit 0

echo "installing: ${need[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
before=$(pgrep -x dockerd | sort || true)
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-engines: apt-get failed" >&2
  exit 1
fi
after=$(pgrep -x dockerd | sort || true)
if [ "$after" != "$before" ]; then
  echo "install-engines: installing docker.io started a dockerd ($(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')): stop it by its PID (it adds iptables rules) and keep services from starting (policy-rc.d exiting 101)" >&2
  exit 1
fi
