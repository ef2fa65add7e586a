#!/usr/bin/env bash
# Installs a build into a fresh prefix, then builds VMMs against it as a user would — C programs
# that include only libsel4vm's headers with `cc $(pkg-config --cflags --libs guestvm)`, and a
# CMake project with find_package(guestvm) — and runs what was built (a missing /dev/kvm is
# fine: they then exit 77).
#   check_install.sh BUILD_DIR SOURCE_DIR GUEST_DIR
set -euo pipefail
build=$1 src=$2 guests=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/lib/libguestvm.a"
so="$work/prefix/lib/libguestvm.so"
test -L "$so"
# The shared library: a versioned SONAME, and only the public C and C++ API exported.
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
[[ "$soname" =~ ^libguestvm\.so\.[0-9]+\.[0-9]+$ ]] || { echo "shared: SONAME '$soname'"; exit 1; }
exported=$(nm -D --defined-only -C "$so")
for sym in vm_init vm_get_vcpu_tcb is_vcpu_online vm_create_vcpu "guestvm::build_machine" \
           "guestvm::Vm::run()"; do
    grep -qF "$sym" <<<"$exported" || { echo "shared: $sym not exported"; exit 1; }
done
for internal in "guestvm::ExitRouter" "guestvm::kvm::" "guestvm::x86::" "guestvm::Serial8250" \
                "fmt::"; do
    if grep -qF "$internal" <<<"$exported"; then
        echo "shared: internal symbol exported:"; grep -F "$internal" <<<"$exported" | head; exit 1
    fi
done
echo "shared: ok ($soname, $(wc -l <<<"$exported") symbols exported)"
test -f "$work/prefix/include/sel4vm/guest_vm_util.h"
test -f "$work/prefix/include/guestvm/vm.hpp"

run() {  # run NAME EXPECTED CMD...: passes on EXPECTED in the output, or on status 77 (no KVM)
    local name=$1 expected=$2; shift 2
    local out status=0
    out=$("$@" 2>&1) || status=$?
    if [[ $status -eq 77 ]]; then echo "$name: built; not run (no usable /dev/kvm)"; return; fi
    if [[ $status -ne 0 || "$out" != *"$expected"* ]]; then
        echo "$name: status $status, wanted \"$expected\" in:"; echo "$out"; exit 1
    fi
    echo "$name: ok"
}

export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# Two VMMs that use nothing but libsel4vm's headers: the example, and the C VMM test.
hello="hello from a 32-bit guest"
for vmm in "$src/examples/c_vmm.c" "$src/tests/c/libsel4vm_vmm.c"; do
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror "$vmm" -o "$work/$(basename "$vmm" .c)_pkgconfig" \
        $(pkg-config --cflags --libs guestvm)
done
run "pkg-config libsel4vm C VMM" "$hello" "$work/c_vmm_pkgconfig" "$guests/hello32.bin"
run "pkg-config libsel4vm C VMM test" "all checks passed" "$work/libsel4vm_vmm_pkgconfig" \
    "$guests/ports32.bin"

cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DGUESTVM_EXAMPLES="$src/examples" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/consumer" -j2 >/dev/null
run "find_package libsel4vm C VMM" "$hello" "$work/consumer/c_vmm" "$guests/hello32.bin"
run "find_package C SMP VMM" "2 of 2 cores came up" "$work/consumer/c_smp_vmm" "$guests/demo.elf" 2
run "find_package C++ VMM" "stopped: power-off" "$work/consumer/cpp_vmm" "$guests/demo.elf" 2

# A C-only project (no C++ compiler enabled): the static target carries the C++ runtime.
cmake -S "$src/tests/install/c_consumer" -B "$work/c_consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DGUESTVM_EXAMPLES="$src/examples" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/c_consumer" -j2 >/dev/null
run "C-only project, static" "$hello" "$work/c_consumer/c_vmm_static" "$guests/hello32.bin"
run "C-only project, shared" "$hello" "$work/c_consumer/c_vmm_shared" "$guests/hello32.bin"
ldd "$work/c_consumer/c_vmm_shared" | grep -q "libguestvm.so" || { echo "shared: not linked"; exit 1; }
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$src/examples/c_vmm.c" -o "$work/c_vmm_pkgconfig_shared" \
   $(pkg-config --cflags --libs guestvm-shared) -Wl,-rpath,"$work/prefix/lib"
run "pkg-config guestvm-shared C VMM" "$hello" "$work/c_vmm_pkgconfig_shared" "$guests/hello32.bin"

# The .deb CPack makes holds the same tree under /usr, with a pkg-config file that says so.
(cd "$build" && cpack -G DEB -B "$work/deb" >/dev/null)
deb=$(ls "$work"/deb/guestvm_*_amd64.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/lib/libguestvm.a ./usr/lib/libguestvm.so ./usr/lib/pkgconfig/guestvm-shared.pc ./usr/include/sel4vm/guest_vm_util.h ./usr/include/guestvm/vm.hpp \
         ./usr/lib/cmake/guestvm/guestvm-config.cmake ./usr/lib/pkgconfig/guestvm.pc ./usr/bin/guestvm; do
    [[ "$contents" == *" $f"* ]] || { echo "deb: $f missing"; echo "$contents"; exit 1; }
done
mkdir "$work/debx" && dpkg-deb -x "$deb" "$work/debx"
grep -qx "prefix=/usr" "$work/debx/usr/lib/pkgconfig/guestvm.pc" || { echo "deb: guestvm.pc prefix"; exit 1; }
echo "deb: ok ($(basename "$deb"))"
