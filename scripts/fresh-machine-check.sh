#!/usr/bin/env bash
# Proves the README's two commands work the first time on a new machine:
# builds a minimal Debian root (debootstrap, none of the project's packages,
# only make and git added as a newcomer would have them), clones this
# checkout's HEAD into it, and there runs `make run` (until it prints its
# listening lines and the superadmin's password) and then `make test`.
#
#   sudo bash scripts/fresh-machine-check.sh        # needs root and apt
#
# KEEP_ROOT=1 keeps the root for a look afterwards. Exit status: 0 when both
# commands worked.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: run as root (debootstrap, chroot)" >&2; exit 2; }
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
root=$(mktemp -d /var/tmp/ss-fresh-root.XXXXXX)
cleanup() {
  for m in dev/pts dev proc sys; do umount -l "$root/$m" 2>/dev/null || true; done
  [ "${KEEP_ROOT:-0}" = 1 ] && { echo "root kept in $root"; return; }
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
echo "== debootstrap $suite (minbase) into $root"
debootstrap --variant=minbase "$suite" "$root" >"$root.debootstrap.log" 2>&1 ||
  { tail -20 "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
# A debootstrapped root has no /etc/hosts; every installed machine names
# localhost there, and the generated certificate is for localhost.
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t sysfs sys "$root/sys"

# The machine's own network setting comes along: a certificate authority
# it trusts for its way out (a proxy that re-signs TLS), and the variable
# that tells Node.js to trust the system's authorities.
extra_ca=$(ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
node_ca=""
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && node_ca="NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C.UTF-8 $node_ca bash -c "$1"; }

echo "== a newcomer's tools: make and git"
in_root "apt-get update -qq && apt-get install -y -qq --no-install-recommends make git ca-certificates >/dev/null"
if [ -n "$extra_ca" ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  # shellcheck disable=SC2086
  cp $extra_ca "$root/usr/local/share/ca-certificates/"
  in_root "update-ca-certificates >/dev/null"
fi
git clone -q --no-local "$repo" "$root/sensorspace"

echo "== make run (first time, on a machine without the project's packages)"
# `make run` binds the default ports: on a busy machine, free 8443, 8080 and
# 7070 first. It runs in a session of its own so that exactly it is stopped.
in_root 'cd /sensorspace && { setsid make run > run.log 2>&1 & sid=$!; }
         for i in $(seq 1 900); do grep -q "^listening udp" run.log && break; sleep 1; done
         kill -TERM -- -$sid 2>/dev/null || true; sleep 2
         grep -E "^(superadmin|listening|tls certificate|web app)" run.log | sed "s/password .*/password (printed)/"
         grep -q "^listening https" run.log || { tail -30 run.log; exit 1; }'

echo "== make test"
in_root 'cd /sensorspace && make test 2>&1 | tail -40; exit ${PIPESTATUS[0]}'
echo "fresh-machine-check: make run and make test passed in a clean $suite root"
