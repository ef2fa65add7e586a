#!/usr/bin/env bash
# Installs what guestvm needs on Debian 12 (apt packages by name, only when missing) and
# builds the given CMake presets (default: "default").
#   scripts/setup.sh [PRESET...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake g++ ccache python3 pkg-config
          libgtest-dev libgmock-dev libbenchmark-dev
          libfmt-dev nlohmann-json3-dev libcli11-dev
          liblz4-dev liblzma-dev libzstd-dev zlib1g-dev
          clang-16 libclang-rt-16-dev cpio
          acpica-tools)  # iasl: the ACPI table test disassembles guestvm's tables
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Debian's kernel and busybox for the Linux boot tests (downloaded, unpacked, never installed).
if ! scripts/fetch-linux.sh; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    scripts/fetch-linux.sh
fi

presets=("$@")
((${#presets[@]})) || presets=(default)
jobs=$(nproc)
for preset in "${presets[@]}"; do
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs"
done
