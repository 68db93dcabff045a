#!/bin/sh
# The full test suite: builds sysgate twice (release, then ASan+UBSan) and
# runs every unit and integration test on each; the benchmark runs once in
# its quick mode to prove it works (numbers are not checked); then the
# libFuzzer targets (clang, ASan+UBSan) run for a bounded time, about 200 s
# in all (tests/fuzz/README.md).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then scripts/install-deps.sh; else sudo scripts/install-deps.sh; fi
jobs=$(nproc)
build() {
	cmake -S . -B "$2" -DCMAKE_BUILD_TYPE="$1" >/dev/null
	cmake --build "$2" -j "$jobs" >/dev/null
}
echo "== release build"
build RelWithDebInfo build-test-release
(cd build-test-release && ctest -j "$jobs" --output-on-failure --timeout 900)
echo "== benchmark, quick mode"
build-test-release/bench/sysgate-bench --quick
echo "== sanitizer build (ASan + UBSan)"
build Sanitize build-test-sanitize
(cd build-test-sanitize && ctest -j "$jobs" --output-on-failure --timeout 900)
echo "== fuzzing (clang, libFuzzer + ASan + UBSan)"
CC=clang cmake -S . -B build-test-fuzz -DCMAKE_BUILD_TYPE=Sanitize -DSYSGATE_FUZZ=ON >/dev/null
cmake --build build-test-fuzz -j "$jobs" --target fuzz >/dev/null
tests/fuzz/run.sh build-test-fuzz
