#!/usr/bin/env bash
# Fetches Debian's cloud kernel (linux-image-*-cloud-amd64) and busybox-static with
# `apt-get download`, unpacks them (nothing is installed or committed) and builds the test
# initramfs: busybox, scripts/initramfs/init as /init, and the kernel's virtio modules from the
# same .deb with every module they depend on (docs/linux.md). Output, in .cache/linux/:
#   vmlinuz        the bzImage as Debian ships it (LZ4 payload)
#   initramfs.cpio busybox + /init + /lib/modules/<release>/{kernel/...,modules.dep,load-order}
#   VERSION        the kernel package's "Package: ... Version: ..."
#   FORMAT         what the initramfs holds; a cache whose FORMAT differs is rebuilt
# Silent when the cache is already up to date; one line when it built it.
#   scripts/fetch-linux.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
init_script="$PWD/scripts/initramfs/init"
out="${1:-.cache/linux}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The modules /init loads (dependencies come with them). ext4 is built into Debian 12's cloud
# kernel (modules.builtin): then there is nothing to load.
WANTED=(virtio virtio_ring virtio_pci virtio_blk virtio_net virtio_console virtio-rng ext4)
# Module files busybox's insmod loads: Debian 12 ships them uncompressed; busybox also reads
# xz and gzip, not zstd.
LOADABLE='\.ko(\.xz|\.gz)?$'
format="initramfs 2 (busybox, virtio modules, load-order); init $(sha256sum <"$init_script" | cut -c1-16)"

if [[ -s "$out/vmlinuz" && -s "$out/initramfs.cpio" && -s "$out/VERSION" &&
      "$(cat "$out/FORMAT" 2>/dev/null)" == "$format" ]]; then
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
busybox="$work/busybox/bin/busybox"
release="$(basename kernel/lib/modules/*)"
[[ -d "kernel/lib/modules/$release/kernel" ]] || { echo "fetch-linux: $pkg has no modules" >&2; exit 1; }

# The .deb has no modules.dep (its postinst runs depmod): make one with busybox's depmod.
mods="kernel/lib/modules/$release"
"$busybox" depmod -b kernel "$release"
declare -A deps_of path_of
while IFS=: read -r path deps; do
    deps_of[$path]="${deps# }"
    name="${path##*/}"
    name="${name%%.ko*}"
    path_of[${name//-/_}]="$path"
done <"$mods/modules.dep"

# Each wanted module after everything it depends on (modules.dep lists the whole closure).
order=()
declare -A placed
place() {
    local path="$1" dep
    [[ -z "${placed[$path]:-}" ]] || return 0
    placed[$path]=1
    for dep in ${deps_of[$path]}; do place "$dep"; done
    order+=("$path")
}
for want in "${WANTED[@]}"; do
    key="${want//-/_}"
    if [[ -n "${path_of[$key]:-}" ]]; then
        place "${path_of[$key]}"
    elif ! grep -Eq "/${want}\.ko" "$mods/modules.builtin"; then
        echo "fetch-linux: $pkg has no module $want, built in or loadable" >&2
        exit 1
    fi
done

mkdir -p root/bin root/proc root/sys root/dev "root/lib/modules/$release"
cp "$busybox" root/bin/busybox
ln -s busybox root/bin/sh
install -m 755 "$init_script" root/init
cp "$mods/modules.builtin" "root/lib/modules/$release/"
for path in "${order[@]}"; do
    [[ "$path" =~ $LOADABLE ]] || { echo "fetch-linux: busybox cannot load $path" >&2; exit 1; }
    mkdir -p "root/lib/modules/$release/$(dirname "$path")"
    cp "$mods/$path" "root/lib/modules/$release/$path"
    echo "$path:${deps_of[$path]:+ ${deps_of[$path]}}" >>"root/lib/modules/$release/modules.dep"
    echo "$path" >>"root/lib/modules/$release/load-order"
done
(cd root && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --quiet) >initramfs.cpio

# Into place, FORMAT last: an interrupted run leaves a cache that the next run rebuilds.
rm -f "$out/FORMAT"
cp kernel/boot/vmlinuz-* "$out/vmlinuz"
dpkg-deb -f "$pkg"_*.deb Package Version | tr '\n' ' ' >"$out/VERSION"
mv initramfs.cpio "$out/initramfs.cpio"
echo "$format" >"$out/FORMAT"
echo "fetch-linux: $(cat "$out/VERSION")with ${#order[@]} modules -> $out"
