#!/bin/bash
# The supervisor's memory under a flood of notifications (issue 6, item 3):
# 8 child threads make N trapped getppid calls between them, answered
#   inline   by a builtin (--trap getppid)
#   fast     by a C worker over the fast channel (the default)
#   nng      by a C worker over nng only (--worker-transport nng)
# and the peak resident set of the sysgate process itself (VmHWM, read
# from /proc until it exits; the children are not counted) is printed with
# the time the calls took (ns per call, all threads together).
#
#   bench/rss-flood.sh [BUILD_DIR] [N] [N_NNG]
#
# BUILD_DIR defaults to ./build, N to 1000000, N_NNG (the nng path is some
# 10x slower) to N/10. Works with any sysgate build, old ones too: nothing
# but /proc is asked.
set -euo pipefail
build=$(realpath "${1:-build}")
n=${2:-1000000}
n_nng=${3:-$((n / 10))}
sysgate=$build/sysgate
loop=$build/bench/sg_bench_loop
worker="$build/bench/sg_bench_worker continue"
for f in "$sysgate" "$loop" "$build/bench/sg_bench_worker"; do
	[ -x "$f" ] || { echo "rss-flood: $f not found (build the project first)" >&2; exit 2; }
done

# run NAME CALLS SYSGATE-ARGS...: one line of results.
run() {
	local name=$1 calls=$2
	shift 2
	local out
	out=$(mktemp)
	"$sysgate" run "$@" -- "$loop" --threads 8 getppid "$calls" >"$out" &
	local pid=$! hwm=0 v
	# VmHWM only grows: the last value read before the exit is the peak.
	while kill -0 "$pid" 2>/dev/null; do
		v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		[ -n "$v" ] && hwm=$v
		sleep 0.05
	done
	wait "$pid" || { echo "rss-flood: $name: sysgate failed" >&2; rm -f "$out"; exit 1; }
	printf '%-8s %9s calls  %10.1f ns/call  peak RSS %6s KiB\n' "$name" "$calls" \
		"$(cat "$out")" "$hwm"
	rm -f "$out"
}

echo "sysgate: $sysgate ($("$sysgate" --version))"
run inline "$n" --trap getppid
run fast "$n" --worker "$worker"
if "$sysgate" run --help | grep -q -- --worker-transport; then
	run nng "$n_nng" --worker "$worker" --worker-transport nng
else
	run nng "$n_nng" --worker "$worker" # before the fast channel: nng was all there was
fi
