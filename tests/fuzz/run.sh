#!/bin/sh
# Runs every libFuzzer target of a fuzzing build for a bounded time, from a
# scratch copy of its committed corpus, and fails on any crash, leak,
# timeout or out-of-memory (libFuzzer's non-zero exit). One line per target:
# executions run, coverage, inputs saved.
#   tests/fuzz/run.sh BUILD-DIR [SECONDS-PER-TARGET]
# Without SECONDS (or SYSGATE_FUZZ_SECONDS), the targets share a budget of
# SYSGATE_FUZZ_BUDGET seconds (200), at least 20 each, so the stage stays
# within about 4 minutes as targets are added.
# BUILD-DIR is configured with CC=clang -DSYSGATE_FUZZ=ON and built with
# --target fuzz. A failure leaves the crashing input (crash-*, leak-*,
# timeout-*, oom-*) and the log in the work directory it names.
set -eu
build=$1
src=$(cd "$(dirname "$0")" && pwd)
targets=$(ls -d "$src"/corpus/*/ | wc -l)
seconds=${2:-${SYSGATE_FUZZ_SECONDS:-$((${SYSGATE_FUZZ_BUDGET:-200} / targets))}}
[ "$seconds" -ge 20 ] || seconds=20
work=$(mktemp -d "${TMPDIR:-/tmp}/sysgate-fuzz.XXXXXX")
failed=""
for corpus in "$src"/corpus/*/; do
	name=$(basename "$corpus")
	bin="$build/tests/fuzz/fuzz_$name"
	if [ ! -x "$bin" ]; then
		echo "fuzz $name: FAILED (no $bin: build with --target fuzz)"
		failed="$failed $name"
		continue
	fi
	mkdir -p "$work/$name"
	# New inputs go to the scratch directory (first), never to the repo's.
	# nice: other jobs share the machine.
	if nice -n 19 "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/$name-" \
		"$work/$name" "$corpus" >"$work/$name.log" 2>&1; then
		status=ok
	else
		status=FAILED
		failed="$failed $name"
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
	cov=$(grep -o 'cov: [0-9]*' "$work/$name.log" | tail -n 1)
	echo "fuzz $name: $status, ${execs:-0} executions (${seconds}s budget), ${cov:-cov: ?}," \
		"$(ls "$work/$name" | wc -l) inputs saved"
	if [ "$status" = FAILED ]; then
		grep -E 'ERROR|SUMMARY|fuzz check|Test unit written' "$work/$name.log" | head -n 8
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed (inputs and logs in $work)" >&2
	exit 1
fi
rm -rf "$work"
