#!/usr/bin/env bash
# Installs the container engines the end-to-end tests drive: Debian's docker.io (dockerd,
# containerd, runc and the API 1.41 client at /usr/bin/docker) and podman 4.3 with the CNI
# reference plugins (netavark is not installed, so podman uses CNI). busybox-static gives
# the containers' root filesystem. Idempotent and quiet when everything is there.
#
# The package must not start a dockerd of its own (one with default settings writes
# iptables rules): the image's policy-rc.d keeps it from doing so; this script checks.
set -euo pipefail
need=()
[ -x /usr/bin/docker ] && [ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /usr/bin/podman ] || need+=(podman)
[ -d /usr/lib/cni ] && [ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  before=$(pgrep -x dockerd || true)
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  after=$(pgrep -x dockerd || true)
  if [ "$after" != "$before" ]; then
    echo "install-engines: the docker.io package started a dockerd (pid $after); stop it (it adds iptables rules) and keep services from starting (policy-rc.d)" >&2
    exit 1
  fi
fi
