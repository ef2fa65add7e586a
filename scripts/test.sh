#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite under the default build and the sanitizer
# builds (ThreadSanitizer; AddressSanitizer + UndefinedBehaviorSanitizer), then the loaders'
# libFuzzer targets (clang 16) for a bounded number of inputs each.
#   scripts/test.sh [PRESET...]      (default: default tsan asan fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
((${#presets[@]})) || presets=(default tsan asan fuzz)
scripts/setup.sh "${presets[@]}"
status=0
for preset in "${presets[@]}"; do
    echo "=== ctest --preset $preset"
    ctest --preset "$preset" || status=1
done
exit $status
