"""The fast channel (shared-memory rings beside each worker's nng link), the
receiver's lane and worker replicas, end to end: real programs under the real
supervisor with real workers, asserting what the program observed (its
output, the errno it saw, its exit status) and what `sysgate -v` reports.

- `--worker-transport fast|nng` (default fast): the same behaviours hold over
  both; `-v` names the transport a worker was served over; a worker that does
  not offer the channel is served over nng.
- The receiver's lane: the receiver thread answers a spinning worker's
  continue/errno/return itself and hands anything slower to the router; `-v`
  logs its counts at the end. Spinning is off with SYSGATE_FAST_SPIN_NS=0 and
  on one CPU.
- `--replicas N`: N copies of a worker share its notifications.
- A worker that breaks its fast channel is failed like any protocol breaker:
  the registration's policy answers and sysgate names the cause."""
import json
import os
import re
import subprocess
import textwrap

import pytest

from conftest import (BUILD, GETPPID, NR, PY, SYSGATE, TIMEOUT, UNTIL_OK, assert_workers_gone,
                      copy_for_nobody, env_with, live_pids_with, read_audit, run, sdk_env,
                      stage_sdk, write_script)

FAKER = os.path.join(BUILD, "examples", "sysgate-getpid-faker")
MISBEHAVE = os.path.join(BUILD, "tests", "workers", "sg-misbehave")
DEFER = os.path.join(BUILD, "tests", "workers", "sg-defer")
BUSY = os.path.join(BUILD, "tests", "workers", "sg-busy")
BENCH_WORKER = os.path.join(BUILD, "bench", "sg_bench_worker")
BENCH_LOOP = os.path.join(BUILD, "bench", "sg_bench_loop")

EPERM = 1

READY = re.compile(r"^sysgate: worker '(.*)' \(.*\): ready, \d+ registrations, "
                   r"over (the fast channel|nng)$", re.M)
PID = re.compile(r"^sysgate: worker '(.*)': pid (\d+)$", re.M)
LANE = re.compile(r"^sysgate: receiver's lane: (\d+) answered on it, (\d+) handed to the "
                  r"router, (\d+) not taken \((\d+) of them: [^)]*\)$", re.M)
TRANSPORT = {"fast": "the fast channel", "nng": "nng"}


# --- programs the sandbox runs (conftest has UNTIL_OK) ----------------------------

GETPID = "import os; print(os.getpid())"

# 8 threads call getpid 200 times each, through ctypes, which lets go of the
# GIL (os.getpid() holds it: the calls would never overlap); prints how many
# did not see 4242.
GETPID_THREADS = f"""
import ctypes, threading
libc = ctypes.CDLL(None)
bad = []
def work():
    for _ in range(200):
        if libc.syscall({NR["getpid"]}) != 4242: bad.append(1)
ts = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print('bad', len(bad), flush=True)
"""

# Calls the syscall numbered argv[1] argv[3] times in each of argv[2] threads
# through syscall(2); prints, as JSON, how many calls failed (with any errno)
# and how many succeeded with a positive result.
CALLS_IN_THREADS = """
import ctypes, json, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
nr, threads, calls = (int(a) for a in sys.argv[1:4])
failed, ok = [], []
def work():
    for _ in range(calls):
        ctypes.set_errno(0)
        r = libc.syscall(nr)
        (ok if r > 0 else failed).append(ctypes.get_errno())
ts = [threading.Thread(target=work) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps([len(failed), len(ok)]), flush=True)
"""

# Calls the syscall numbered argv[1] once (os.getppid() cannot report an
# error: it returns -1 as the parent's pid); prints "ok" or the errno's
# name, and exits 7 so sysgate's status can be told from its own.
ONE_CALL_ERRNO = """
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
ctypes.set_errno(0)
r = libc.syscall(int(sys.argv[1]))
print("ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"), flush=True)
sys.exit(7)
"""

# Calls getppid (argv[1]) from 4 threads 10 times each, through ctypes,
# which lets go of the GIL (os.getppid() holds it: the calls would never
# overlap); prints the values seen (JSON).
GETPPID_VALUES = """
import ctypes, json, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
seen = []
def work():
    for _ in range(10):
        seen.append(libc.syscall(int(sys.argv[1])))
ts = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(seen), flush=True)
"""


# --- helpers ------------------------------------------------------------------

def transports(stderr):
    """{worker label: what it was served over} from the -v ready lines."""
    return {label: over for label, over in READY.findall(stderr)}


def worker_pids(stderr):
    """[(label, pid)] from the -v lines that start each worker."""
    return [(label, int(pid)) for label, pid in PID.findall(stderr)]


def lane_counts(stderr):
    """(answered, handed, not taken, same CPU) from the receiver's lane line,
    or None if there is none; there is at most one."""
    found = LANE.findall(stderr)
    assert len(found) <= 1, stderr
    return tuple(int(x) for x in found[0]) if found else None


def a_number(stdout):
    """What sg_bench_loop prints: the mean cost per call in ns."""
    return float(stdout.strip()) > 0


def transport_opts(transport):
    return ["--worker-transport", transport]


def faker(rundir_base, program, over, *options, env=None):
    """`sysgate run -v OPTIONS --worker 'FAKER 4242' -- PY -c PROGRAM`:
    asserts that it exited 0 and that -v says the faker was served over
    OVER; returns the completed process."""
    r = run("-v", *options, "--worker", f"{FAKER} 4242", "--", PY, "-c", program,
            env=env or env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert transports(r.stderr) == {f"{FAKER} 4242": over}, r.stderr
    return r


def misbehave_knows(mode):
    """Whether this build of sg-misbehave has MODE (it says "unknown mode"
    before it looks for the supervisor)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSGATE_WORKER_")}
    try:
        p = subprocess.run([MISBEHAVE, mode], capture_output=True, text=True, timeout=10,
                           env=env)
    except OSError:
        return False
    return "unknown mode" not in p.stderr


# --- --worker-transport ----------------------------------------------------------

def test_default_transport_is_the_fast_channel(sysgate_bin, rundir_base):
    r = faker(rundir_base, GETPID, "the fast channel")
    assert r.stdout == "4242\n"


def test_worker_without_the_channel_is_served_over_nng(sysgate_bin, rundir_base):
    """sg-misbehave speaks the raw protocol and does not offer the channel:
    the default transport falls back to nng for it, and it still answers."""
    r = run("-v", "--worker", f"{MISBEHAVE} ok", "--", PY, "-c", ONE_CALL_ERRNO, str(GETPPID),
            env=env_with(rundir_base))
    assert r.returncode == 7, r.stderr
    assert r.stdout == "ok\n"
    assert transports(r.stderr) == {f"{MISBEHAVE} ok": "nng"}, r.stderr


@pytest.mark.parametrize("transport", ["fast", "nng"])
def test_faker_over_either_transport(sysgate_bin, rundir_base, transport):
    r = faker(rundir_base, GETPID, TRANSPORT[transport], *transport_opts(transport))
    assert r.stdout == "4242\n"


@pytest.mark.parametrize("transport", ["fast", "nng"])
@pytest.mark.parametrize("mode,call", [("read", "pwrite64"), ("path", "faccessat")])
def test_c_worker_memory_and_path_over_either_transport(sysgate_bin, rundir_base, transport,
                                                        mode, call):
    """read: the handler reads the 256-byte buffer through the memory proxy
    and checks its bytes; path: it checks the pre-read path. A failed check
    gets DENY_EIO, which makes sg_bench_loop stop with status 1."""
    worker = f"{BENCH_WORKER} {mode}"
    r = run("-v", *transport_opts(transport), "--worker", worker, "--", BENCH_LOOP, call,
            "200", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert a_number(r.stdout), r.stdout
    assert transports(r.stderr) == {worker: TRANSPORT[transport]}, r.stderr


@pytest.mark.parametrize("transport", ["fast", "nng"])
def test_multithreaded_child_over_either_transport(sysgate_bin, rundir_base, transport):
    r = faker(rundir_base, GETPID_THREADS, TRANSPORT[transport], *transport_opts(transport))
    assert r.stdout == "bad 0\n"


def test_unknown_transport_is_refused(sysgate_bin, rundir_base):
    r = run("--worker-transport", "bogus", "--worker", f"{FAKER} 1", "--", "sh", "-c",
            "echo the child ran", env=env_with(rundir_base))
    assert r.returncode == 125
    assert r.stdout == ""
    assert "--worker-transport" in r.stderr and "bogus" in r.stderr, r.stderr


# --- the receiver's lane -------------------------------------------------------------

def test_lane_answers_a_fast_worker(sysgate_bin, rundir_base):
    """A C worker that continues at once: every one of the 2000 calls is
    counted once in the lane's line, and the lane answers some of them
    itself. (Most, when the machine is idle; with both CPUs busy it answered
    only about 600, so the split is not asserted.)"""
    r = run("-v", "--worker", f"{BENCH_WORKER} continue", "--", BENCH_LOOP, "getppid", "2000",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert a_number(r.stdout), r.stdout
    counts = lane_counts(r.stderr)
    assert counts, r.stderr
    answered, handed, not_taken, _ = counts
    assert answered + handed + not_taken == 2000, counts
    assert answered > 0, counts


def test_lane_hands_slow_answers_to_the_router(sysgate_bin, rundir_base):
    """sg-defer answers 2 ms later, long after the receiver stopped spinning:
    the router takes those over, and every call still gets its answer."""
    r = run("-v", "--worker", f"{DEFER} --delay-ms 2 --policy DENY_EIO", "--", PY, "-c",
            CALLS_IN_THREADS, str(GETPPID), "4", "25", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [0, 100]
    counts = lane_counts(r.stderr)
    assert counts, r.stderr
    answered, handed, not_taken, _ = counts
    assert handed > 0, counts
    assert answered + handed + not_taken == 100, counts


ERRNOS_IN_THREADS = """
import collections, ctypes, json, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
nr, threads, calls = (int(a) for a in sys.argv[1:4])
seen = collections.Counter()
def work():
    for _ in range(calls):
        ctypes.set_errno(0)
        r = libc.syscall(nr)
        seen[ctypes.get_errno() if r == -1 else 0] += 1
ts = [threading.Thread(target=work) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(dict(seen)), flush=True)
"""


@pytest.mark.parametrize("transport", ["fast", "nng"])
def test_busy_handlers_reading_memory(sysgate_bin, rundir_base, transport):
    """Every handler thread busy (0.3 ms of work, then a memory read) while
    16 program threads keep calling: snapshots queue up and memory replies
    arrive while no thread is free. Each of the 4800 calls gets the
    handler's answer (errno 77), none a timeout's or a failure's. (A handler
    once ran holding the fast channel's pump role: its own memory reply was
    never read.)"""
    r = run("--handler-timeout", "3000", "--worker-transport", transport, "--worker",
            f"{BUSY} --work-us 300", "--", PY, "-c", ERRNOS_IN_THREADS, str(GETPPID), "16",
            "300", env=env_with(rundir_base), timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"77": 4800}, r.stderr
    assert "did not answer" not in r.stderr and "restarting" not in r.stderr, r.stderr


def test_no_spinning_with_spin_time_zero(sysgate_bin, rundir_base):
    env = dict(env_with(rundir_base), SYSGATE_FAST_SPIN_NS="0")
    r = faker(rundir_base, GETPID_THREADS, "the fast channel", env=env)
    assert r.stdout == "bad 0\n"
    counts = lane_counts(r.stderr)
    assert counts is None or counts[0] == 0, counts


def first_cpu():
    return min(os.sched_getaffinity(0))


@pytest.mark.parametrize("worker,argv,check", [
    (f"{FAKER} 4242", [PY, "-c", GETPID_THREADS], lambda out: out == "bad 0\n"),
    (f"{BENCH_WORKER} read", [BENCH_LOOP, "pwrite64", "200"], a_number),
], ids=["faker-threads", "memory-proxy"])
def test_on_one_cpu(sysgate_bin, rundir_base, worker, argv, check):
    """sysgate (and so its workers and the program) confined to one CPU:
    nothing spins for a peer that cannot run, and every answer is right."""
    r = subprocess.run(["taskset", "-c", str(first_cpu()), SYSGATE, "run", "-v", "--worker",
                        worker, "--", *argv], capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert check(r.stdout), r.stdout
    assert transports(r.stderr) == {worker: "the fast channel"}, r.stderr
    counts = lane_counts(r.stderr)
    assert counts is None or counts[0] == 0, counts


# --- --replicas -----------------------------------------------------------------------

def test_replicas_are_started_and_labelled(sysgate_bin, rundir_base):
    spec = f"{FAKER} 4242"
    r = run("-v", "--worker", spec, "--replicas", "3", "--", PY, "-c", GETPID_THREADS,
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bad 0\n"
    labels = [label for label, _ in worker_pids(r.stderr)]
    assert sorted(labels) == [spec, f"{spec} [replica 2]", f"{spec} [replica 3]"], r.stderr
    assert len({pid for _, pid in worker_pids(r.stderr)}) == 3
    assert transports(r.stderr) == {label: "the fast channel" for label in labels}, r.stderr


def test_both_replicas_serve(sysgate_bin, rundir_base, pubdir):
    """Each answer is the pid of the worker that gave it, 20 ms late: calls
    from 4 threads overlap, and both replicas answer some of them."""
    lib = stage_sdk(pubdir)
    worker = write_script(pubdir, "whoami.py", textwrap.dedent("""
        import os, time
        from sysgate import Handler, NotifAction, serve

        class WhoAmI(Handler):
            def handle(self, ctx):
                time.sleep(0.02)
                return NotifAction.returns(os.getpid())

        raise SystemExit(serve([("getppid", WhoAmI())]))
    """))
    r = run("-v", "--worker", f"{PY} {worker}", "--replicas", "2", "--", PY, "-c",
            GETPPID_VALUES, str(GETPPID), env=sdk_env(rundir_base, lib, pubdir))
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert len(seen) == 40
    started = {pid for _, pid in worker_pids(r.stderr)}
    assert len(started) == 2, r.stderr
    assert set(seen) == started, (seen, r.stderr)


def test_replicas_must_register_alike(sysgate_bin, rundir_base, pubdir):
    lib = stage_sdk(pubdir)
    worker = write_script(pubdir, "odd.py", textwrap.dedent("""
        import os
        from sysgate import Handler, NotifAction, serve

        class Cont(Handler):
            def handle(self, ctx):
                return NotifAction.continue_()

        first = os.environ.get("SYSGATE_WORKER_REPLICA") == "0"
        raise SystemExit(serve([("getppid" if first else "getpid", Cont())]))
    """))
    r = run("--worker", f"{PY} {worker}", "--replicas", "2", "--", "sh", "-c",
            "echo the child ran", env=sdk_env(rundir_base, lib, pubdir))
    assert r.returncode == 125, r.stderr
    assert r.stdout == ""
    assert "registered differently from its other replicas" in r.stderr, r.stderr


@pytest.mark.parametrize("args,named", [
    (["--replicas", "2", "--worker", f"{FAKER} 1"], "--replicas 2"),
    (["--worker", f"{FAKER} 1", "--replicas", "0"], "--replicas 0"),
    (["--worker", f"{FAKER} 1", "--replicas", "9"], "--replicas 9"),
], ids=["before-worker", "zero", "nine"])
def test_bad_replicas_are_refused(sysgate_bin, rundir_base, args, named):
    r = run(*args, "--", "sh", "-c", "echo the child ran", env=env_with(rundir_base))
    assert r.returncode == 125
    assert r.stdout == ""
    assert named in r.stderr, r.stderr


def test_a_crashed_replica_is_restarted(sysgate_bin, rundir_base, tmp_path):
    """Each replica crashes on its first notification (--once: not after a
    restart): those calls get EPERM, then a restarted replica answers."""
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{MISBEHAVE} --once --policy eperm segv",
            "--replicas", "2", "--", PY, "-c", UNTIL_OK, str(GETPPID), "20",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{EPERM} 0\n"
    assert "killed by SIGSEGV" in r.stderr
    types = [x["type"] for x in read_audit(audit)]
    assert "worker_restarted" in types, types
    assert_workers_gone(audit)


# --- a worker attacking its fast channel ------------------------------------------------

ATTACKS = {
    "fastcorrupt": "corrupted its fast channel",
    "fasthead": "corrupted its fast channel",
    "fastgarbage": "malformed",
    "fastlifecycle": "lifecycle message on its fast channel",
}


@pytest.mark.parametrize("mode", sorted(ATTACKS))
def test_fast_channel_attack_gets_the_policy(sysgate_bin, rundir_base, pubdir, tmp_path, mode):
    """The worker breaks its fast channel (after the Welcome, or once the
    program's call reached it), and so does every restart: the program's call
    gets the registration's policy (EPERM), sysgate names the cause, exits
    with the program's status and leaves no worker behind."""
    if not misbehave_knows(mode):
        pytest.skip(f"sg-misbehave has no mode {mode} yet")
    misbehave = copy_for_nobody(MISBEHAVE, pubdir)  # a path only this test's workers have
    spec = f"{misbehave} --policy eperm --syscall getppid {mode}"
    audit = tmp_path / "a.jsonl"
    r = run("--handler-timeout", "2000", "--audit", str(audit), "--worker", spec, "--", PY,
            "-c", ONE_CALL_ERRNO, str(GETPPID), env=env_with(rundir_base), timeout=30)
    assert "did not answer" not in r.stderr, r.stderr
    assert r.stdout == "EPERM\n", r.stderr
    assert r.returncode == 7, r.stderr
    assert ATTACKS[mode] in r.stderr, r.stderr
    failed = [x for x in read_audit(audit) if x["type"] == "worker_failed"]
    assert failed and failed[0]["kind"] == "violation", failed
    assert_workers_gone(audit)
    assert not live_pids_with(pubdir)
