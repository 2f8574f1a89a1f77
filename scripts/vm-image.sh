#!/usr/bin/env bash
# Builds, once, a tiny VM for tests that need a real guest on a Switchyard port: a Debian
# kernel and an initramfs of static busybox + the e1000 driver whose /init gets an address
# by DHCP (sending its hostname), pings the gateway and a target, resolves a name through
# the gateway's DNS, prints SYTEST-* markers on the serial console and powers off.
#
#   bash scripts/vm-image.sh                 # prints the cache dir (default /var/cache/switchyard-test-vm)
#   VM_CACHE=/tmp/vm bash scripts/vm-image.sh
#   qemu-system-x86_64 -machine pc -m 256 -nodefaults -display none -serial stdio -no-reboot \
#     -kernel $DIR/vmlinuz -initrd $DIR/initrd.gz \
#     -append 'console=ttyS0 sy.host=vm1 sy.ping=10.240.0.2 sy.lookup=web sy.hold=5' \
#     -netdev tap,id=n0,ifname=TAP,script=no,downscript=no -device e1000,netdev=n0
#
# Kernel command line read by /init (all optional):
#   sy.host=NAME    hostname sent in DHCP option 12 (default sytest-vm)
#   sy.ping=A,B     addresses to ping after the gateway (markers ping-1, ping-2, ...)
#   sy.lookup=NAME  name to resolve at the DHCP-given DNS server (marker dns, with the address)
#   sy.hold=N       seconds to stay up after the tests, before power-off (default 0)
# Markers (one per line): SYTEST-BOOT, SYTEST-CARRIER, SYTEST-LEASE ip=.. mask=.. router=..
# dns=.. server=.., SYTEST-RESULT <name>=ok|fail [detail], SYTEST-HOLD n, SYTEST-DONE.
#
# Installs qemu-system-x86 and cpio when missing. Idempotent: a complete cache built by this
# same script is left alone (a changed script rebuilds the initramfs, not the kernel).
set -euo pipefail

CACHE=${VM_CACHE:-/var/cache/switchyard-test-vm}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
export DEBIAN_FRONTEND=noninteractive

log() { echo "vm-image: $*" >&2; }
die() { echo "vm-image: error: $*" >&2; exit 1; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

# --- host tools -----------------------------------------------------------------------
apt_updated=0
apt_install() {
  if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>"$CACHE/.apt.err"; then
    if [ $apt_updated = 0 ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt_updated=1
      apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>"$CACHE/.apt.err" && return 0
    fi
    die "apt-get install $* failed: $(tail -n 3 "$CACHE/.apt.err")"
  fi
}
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_install "${need[@]}"
fi

stamp_want="script=$(sha256sum "$SELF" | cut -d' ' -f1)"
if [ -s "$CACHE/vmlinuz" ] && [ -s "$CACHE/initrd.gz" ] && [ "$(cat "$CACHE/STAMP" 2>/dev/null)" = "$stamp_want" ]; then
  echo "$CACHE"
  exit 0
fi

# apt-get download as root warns unless the _apt user can write the folder.
work=$(mktemp -d "$CACHE/.work.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

apt_download() { # PKG -> the .deb's path in $work/deb
  local pkg=$1
  mkdir -p "$work/deb"
  chmod 777 "$work/deb"
  if ! (cd "$work/deb" && apt-get download "$pkg" >/dev/null 2>"$work/apt.err"); then
    if [ $apt_updated = 0 ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt_updated=1
    fi
    (cd "$work/deb" && apt-get download "$pkg" >/dev/null 2>"$work/apt.err") ||
      die "could not download the Debian package $pkg: $(tail -n 2 "$work/apt.err")"
  fi
  ls "$work/deb/${pkg}_"*.deb | head -n 1
}

# --- kernel and e1000 module (kept across initramfs rebuilds) -------------------------
if [ ! -s "$CACHE/kernel/vmlinuz" ] || [ ! -s "$CACHE/kernel/e1000.ko" ]; then
  kernel_pkg() { # the linux-image-6.1.0-N-amd64 apt offers now
    if [ -n "${VM_KERNEL_PKG:-}" ]; then echo "$VM_KERNEL_PKG"; return; fi
    local p
    p=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\.0-.*-amd64$/ {print $2; exit}')
    [ -n "$p" ] || p=$(apt-cache search '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1)
    echo "$p"
  }
  pkg=$(kernel_pkg)
  if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
    pkg=$(kernel_pkg)
  fi
  [ -n "$pkg" ] || die "apt offers no linux-image-6.1.0-*-amd64 package (is apt reachable? try apt-get update)"
  log "downloading $pkg"
  if ! deb=$(apt_download "$pkg" 2>/dev/null); then
    # Stale lists name a kernel the mirror no longer has: refresh and ask again.
    apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
    pkg=$(kernel_pkg)
    log "retrying with $pkg after apt-get update"
    deb=$(apt_download "$pkg")
  fi
  mkdir -p "$work/kernel"
  dpkg-deb -x "$deb" "$work/kernel"
  vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
  [ -n "$vmlinuz" ] || die "$pkg has no boot/vmlinuz-*"
  kver=${vmlinuz##*/vmlinuz-}
  mod=$(find "$work/kernel/lib/modules/$kver" -name 'e1000.ko*' -path '*/intel/e1000/*' | head -n 1)
  [ -n "$mod" ] || die "$pkg has no e1000 module"
  case $mod in
    *.xz) xz -dc "$mod" >"$work/e1000.ko" ;;
    *.zst) command -v zstd >/dev/null || apt_install zstd; zstd -dc "$mod" >"$work/e1000.ko" ;;
    *.gz) gzip -dc "$mod" >"$work/e1000.ko" ;;
    *) cp "$mod" "$work/e1000.ko" ;;
  esac
  # e1000 needs nothing else; fail loudly should a future kernel say otherwise.
  deps=$(grep -a -o 'depends=[[:alnum:]_,-]*' "$work/e1000.ko" | head -n 1 | cut -d= -f2)
  [ -z "$deps" ] || die "e1000 depends on modules this script does not pack: $deps"
  rm -rf "$CACHE/kernel"
  mkdir -p "$CACHE/kernel"
  cp "$vmlinuz" "$CACHE/kernel/vmlinuz"
  cp "$work/e1000.ko" "$CACHE/kernel/e1000.ko"
  echo "$pkg $kver" >"$CACHE/kernel/VERSION"
  rm -rf "$work/kernel" "$work/deb"
fi

# --- busybox ----------------------------------------------------------------------------
mkdir -p "$work/bb"
if deb=$(apt_download busybox-static 2>/dev/null); then
  dpkg-deb -x "$deb" "$work/bb"
  busybox=$work/bb/bin/busybox
elif dpkg -s busybox-static >/dev/null 2>&1; then
  busybox=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n 1)
  log "using the installed busybox-static ($busybox)"
else
  die "could not download the Debian package busybox-static"
fi
[ -x "$busybox" ] || die "no busybox binary in busybox-static"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || ! command -v file >/dev/null ||
  die "$busybox is not statically linked"
for applet in udhcpc ping nslookup insmod ifconfig route ip poweroff; do
  "$busybox" --list | grep -qx "$applet" || die "busybox-static lacks the $applet applet"
done

# --- initramfs --------------------------------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,run,lib/modules}
cp "$busybox" "$root/bin/busybox"
for path in $("$busybox" --list-full); do
  [ -e "$root/$path" ] || ln -s /bin/busybox "$root/$path"
done
cp "$CACHE/kernel/e1000.ko" "$root/lib/modules/e1000.ko"
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

cat >"$root/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc calls this with deconfig, bound, renew, leasefail or nak in $1.
case "$1" in
  deconfig)
    ifconfig "$interface" 0.0.0.0 up
    ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    while route del default gw 0.0.0.0 dev "$interface" 2>/dev/null; do :; done
    for r in $router; do route add default gw "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "SYTEST-LEASE ip=$ip mask=${mask:-} subnet=${subnet:-} router=$(echo $router | tr ' ' ,) dns=$(echo $dns | tr ' ' ,) server=${serverid:-} lease=${lease:-} hostname=${hostname:-}"
    echo "$ip" >/tmp/lease.ip
    ;;
  leasefail|nak)
    echo "SYTEST-DHCP-EVENT $1 ${message:-}"
    ;;
esac
exit 0
EOF
chmod 755 "$root/udhcpc.script"

cat >"$root/init" <<'EOF'
#!/bin/sh
# The test guest: DHCP, pings, a DNS lookup, markers on the console, power-off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null || mdev -s
mount -t tmpfs tmp /tmp
exec </dev/console >/dev/console 2>&1
echo 1 >/proc/sys/kernel/printk

host=sytest-vm ping_list= lookup= hold=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    sy.host=*) host=${arg#sy.host=} ;;
    sy.ping=*) ping_list=$(echo "${arg#sy.ping=}" | tr , ' ') ;;
    sy.lookup=*) lookup=${arg#sy.lookup=} ;;
    sy.hold=*) hold=${arg#sy.hold=} ;;
  esac
done
hostname "$host"
echo "SYTEST-BOOT host=$host uptime=$(cut -d' ' -f1 /proc/uptime)"

result() { echo "SYTEST-RESULT $*"; }
finish() {
  echo "SYTEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
  sync
  poweroff -f
  sleep 5
}

ip link set lo up
insmod /lib/modules/e1000.ko || { result "driver=fail insmod"; finish; }
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
i=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "SYTEST-CARRIER $(cat /sys/class/net/eth0/carrier 2>/dev/null) mac=$(cat /sys/class/net/eth0/address) waited=${i}x100ms"

if udhcpc -i eth0 -x "hostname:$host" -s /udhcpc.script -n -q -t 10 -T 2 -A 1; then
  result "dhcp=ok ip=$(cat /tmp/lease.ip)"
else
  result "dhcp=fail"
  finish
fi

gw=$(route -n | awk '$1 == "0.0.0.0" {print $2; exit}')
if [ -n "$gw" ] && ping -c 3 -i 0.2 -W 2 "$gw" >/tmp/ping.out 2>&1; then
  result "ping-gw=ok gw=$gw $(grep -o '[0-9]* packets received' /tmp/ping.out)"
else
  result "ping-gw=fail gw=$gw $(tail -n 2 /tmp/ping.out 2>/dev/null | tr '\n' ' ')"
fi

n=0
for target in $ping_list; do
  n=$((n + 1))
  if ping -c 3 -i 0.2 -W 2 "$target" >/tmp/ping.out 2>&1; then
    result "ping-$n=ok target=$target $(grep -o '[0-9]* packets received' /tmp/ping.out)"
  else
    result "ping-$n=fail target=$target $(tail -n 2 /tmp/ping.out | tr '\n' ' ')"
  fi
done

if [ -n "$lookup" ]; then
  dns=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
  nslookup "$lookup" "$dns" >/tmp/ns.out 2>&1
  # busybox prints the server first ("Server: x" / "Address: x:53"), then the answers.
  addr=$(awk '/^Name:/ {seen = 1} seen && /^Address/ {print $NF; exit}' /tmp/ns.out)
  if [ -n "$addr" ]; then
    result "dns=ok name=$lookup server=$dns addr=$addr"
  else
    result "dns=fail name=$lookup server=$dns $(tr '\n' ' ' </tmp/ns.out)"
  fi
fi

if [ "$hold" -gt 0 ] 2>/dev/null; then
  echo "SYTEST-HOLD $hold"
  sleep "$hold"
fi
finish
EOF
chmod 755 "$root/init"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 >"$work/initrd.gz"
cp "$CACHE/kernel/vmlinuz" "$work/vmlinuz.new"
mv "$work/vmlinuz.new" "$CACHE/vmlinuz"
mv "$work/initrd.gz" "$CACHE/initrd.gz"
echo "$stamp_want" >"$CACHE/STAMP"
rm -f "$CACHE/.apt.err"
log "built $(cat "$CACHE/kernel/VERSION"), busybox $("$busybox" 2>&1 | head -n 1 | awk '{print $2}')"
echo "$CACHE"
