#!/bin/sh
# bench/soak.sh: loops the bench's replicas and receiver's-lane cases under a
# CPU-bound neighbour for a bounded time, and fails loudly if any run exits
# non-zero or any worker leaves, fails or is restarted during a run (issue 12
# item 17: a worker of nng-worker-replicas once exited with status 0 mid-run on
# a busy machine, and sysgate with 1).
#
#   bench/soak.sh [--minutes N] [--build DIR] [--iters N] [--no-neighbour]
#
# --minutes N     how long to loop (default 3; 0: one round of the cases); the
#                 last round may end up to its runs' timeout (120 s each) later
# --build DIR     the build tree holding sysgate and bench/ (default: ../build
#                 next to this script)
# --iters N       getppid/pwrite64 calls per run (default 5000: the full bench's
#                 C worker cases)
# --no-neighbour  do not start the CPU-bound neighbour
#
# Cases, each run as the bench runs it, with -v:
#   worker-replicas       --worker 'sg_bench_worker continue' --replicas 2,
#                         sg_bench_loop --threads 2 getppid N
#   nng-worker-replicas   the same with --worker-transport nng
#   worker-continue       the receiver's lane: one fast worker, getppid N
#   worker-read           the lane with a memory request per call, pwrite64 N
#   nng-worker-continue   the same hop over nng
# A run fails if sysgate exits non-zero, prints no ns/call figure, or its -v
# output says a worker exited, was killed, failed, timed out, lost its link,
# was restarted or had its policy applied. Prints "runs N, failures M,
# minutes T" at the end; exit status 1 if any run failed, 2 on a usage error.
# The neighbour is started by this script and always killed by it.
set -u

minutes=3
iters=5000
neighbour=1
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"

while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) minutes=${2-}; shift 2 || exit 2 ;;
	--build) build=${2-}; shift 2 || exit 2 ;;
	--iters) iters=${2-}; shift 2 || exit 2 ;;
	--no-neighbour) neighbour=0; shift ;;
	-h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
case "$minutes" in '' | *[!0-9]*) echo "soak.sh: --minutes wants a whole number" >&2; exit 2 ;; esac
case "$iters" in '' | *[!0-9]*) echo "soak.sh: --iters wants a whole number" >&2; exit 2 ;; esac

sysgate="$build/sysgate"
worker="$(cd "$build/bench" 2>/dev/null && pwd)/sg_bench_worker"
loop="$build/bench/sg_bench_loop"
for f in "$sysgate" "$worker" "$loop"; do
	if [ ! -x "$f" ]; then
		echo "soak.sh: $f is missing: build the project first (see bench/README.md)" >&2
		exit 2
	fi
done

logs=$(mktemp -d "${TMPDIR:-/tmp}/sysgate-soak-XXXXXX") || exit 2
hog=
cleanup() {
	if [ -n "$hog" ]; then
		kill "$hog" 2>/dev/null
		wait "$hog" 2>/dev/null
	fi
	hog=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM HUP

if [ "$neighbour" = 1 ]; then
	sh -c 'while :; do :; done' &
	hog=$!
fi

# What -v prints when a worker leaves or fails during the run: with the
# run's own ending (Goodbye, then exit) sysgate prints none of these.
bad='exited with status|killed by SIG|restarting it|out of restarts|closed its link|did not answer|did not register|gets exception policy|refused a connection|reported an error|said goodbye|without a Goodbye|sysgate worker "'

run_case() { # NAME SYSGATE-ARGS... -- LOOP-ARGS...
	name=$1
	shift
	runs=$((runs + 1))
	out="$logs/out" err="$logs/err"
	timeout 120 "$sysgate" run -v "$@" >"$out" 2>"$err" </dev/null
	rc=$?
	why=
	if [ "$rc" -ne 0 ]; then
		why="exit status $rc"
	elif ! grep -Eq '^[0-9]+(\.[0-9]+)?$' "$out"; then
		why="no ns/call figure"
	elif grep -Eq "$bad" "$err"; then
		why="a worker left or failed during the run"
	fi
	if [ -n "$why" ]; then
		failures=$((failures + 1))
		keep="$logs/failure-$failures-$name"
		cp "$err" "$keep.stderr"
		cp "$out" "$keep.stdout"
		echo "soak.sh: FAIL run $runs ($name): $why; sysgate -v output in $keep.stderr" >&2
		grep -E "$bad" "$err" | head -5 | sed 's/^/    /' >&2
	fi
}

runs=0
failures=0
start=$(date +%s)
end=$((start + minutes * 60))
half=$((iters / 2))
echo "soak.sh: $minutes min of the replicas and lane cases, $iters calls a run," \
	"neighbour: $([ -n "$hog" ] && echo "pid $hog" || echo none)"
while :; do # one round at least, even with --minutes 0
	run_case worker-replicas --worker "$worker continue" --replicas 2 -- \
		"$loop" --threads 2 getppid "$iters"
	run_case nng-worker-replicas --worker "$worker continue" --replicas 2 \
		--worker-transport nng -- "$loop" --threads 2 getppid "$iters"
	run_case worker-continue --worker "$worker continue" -- "$loop" getppid "$iters"
	run_case worker-read --worker "$worker read" -- "$loop" pwrite64 "$half"
	run_case nng-worker-continue --worker "$worker continue" --worker-transport nng -- \
		"$loop" getppid "$iters"
	[ "$(date +%s)" -lt "$end" ] || break
done
cleanup
elapsed=$(($(date +%s) - start))
echo "soak.sh: runs $runs, failures $failures, minutes $((elapsed / 60)).$((elapsed % 60 * 10 / 60))"
if [ "$failures" -gt 0 ]; then
	echo "soak.sh: FAILED: the failing runs' output is in $logs" >&2
	exit 1
fi
rm -rf "$logs"
exit 0
