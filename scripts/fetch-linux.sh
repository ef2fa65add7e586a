#!/usr/bin/env bash
# Fetches Debian's cloud kernel (linux-image-*-cloud-amd64) and busybox-static with
# `apt-get download`, unpacks them (nothing is installed or committed) and builds a tiny
# initramfs whose /init prints a line and powers off. Output, in .cache/linux/:
#   vmlinuz        the bzImage as Debian ships it (LZ4 payload)
#   initramfs.cpio busybox + /init
#   VERSION        the kernel package's version
#   scripts/fetch-linux.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.cache/linux}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [[ -s "$out/vmlinuz" && -s "$out/initramfs.cpio" ]]; then
    echo "fetch-linux: $out already has $(cat "$out/VERSION")"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# The metapackage names the current kernel package; download that one.
pkg="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')"
[[ -n "$pkg" ]] || { echo "fetch-linux: no linux-image-cloud-amd64 in apt's lists (run apt-get update)" >&2; exit 1; }
# apt-get download runs as _apt when root; a world-writable directory lets it write there.
chmod 777 "$work"
apt-get download -q "$pkg" busybox-static >/dev/null
dpkg-deb -x "$pkg"_*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox
cp kernel/boot/vmlinuz-* "$out/vmlinuz"
dpkg-deb -f "$pkg"_*.deb Package Version | tr '\n' ' ' > "$out/VERSION"

mkdir -p root/bin root/proc root/sys root/dev
cp busybox/bin/busybox root/bin/busybox
ln -s busybox root/bin/sh
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox echo "guestvm-initramfs: /init is running"
/bin/busybox poweroff -f
INIT
chmod 755 root/init
(cd root && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$out/initramfs.cpio"
echo "fetch-linux: $(cat "$out/VERSION")-> $out"
