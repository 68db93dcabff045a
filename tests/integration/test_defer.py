"""Deferred answers end to end (docs/handlers.md#deferred-answers):
sg-defer defers every getppid with sg_defer and completes it from a timer
thread, on a worker with one handler thread. Answers that overlap in time
therefore prove the worker went on while one was pending; an answer never
completed gets the registration's exception policy at --handler-timeout;
past the supervisor's in-flight limit (64 per worker) the policy answers at
once."""
import os

import pytest

from conftest import (BUILD, CONCURRENT_CALLS, GETPPID, PY, env_with, last_json, read_audit,
                      run)

DEFER = os.path.join(BUILD, "tests", "workers", "sg-defer")
EPERM, EIO = 1, 5
IN_FLIGHT_LIMIT = 64  # WORKER_MAX_INFLIGHT


def calls(rundir_base, threads, worker, *options):
    """Runs CONCURRENT_CALLS (getppid) in `threads` threads under sysgate
    with the worker command line; (sysgate's result, the errnos, the
    seconds)."""
    r = run(*options, "--worker", worker, "--", PY, "-c", CONCURRENT_CALLS, str(GETPPID),
            str(threads), env=env_with(rundir_base))
    if r.returncode != 0 or not r.stdout.strip():
        return r, None, None
    errnos, seconds = last_json(r.stdout)
    return r, errnos, seconds


def audited(rundir_base, tmp_path, handler_timeout, defer_args, code):
    """Runs `PY -c CODE GETPPID` under sysgate with an audit log, the given
    --handler-timeout (ms) and sg-defer DEFER_ARGS as the worker; asserts
    that sysgate exited 0. (sysgate's result, the types of the audit
    records.)"""
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--handler-timeout", str(handler_timeout), "--worker",
            f"{DEFER} {defer_args}", "--", PY, "-c", code, str(GETPPID),
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    return r, [x["type"] for x in read_audit(audit)]


def test_two_slow_answers_overlap(sysgate_bin, rundir_base):
    r, errnos, seconds = calls(rundir_base, 2, f"{DEFER} --delay-ms 500")
    assert r.returncode == 0, r.stderr
    assert errnos == [0, 0]
    # One after the other would take 1 s.
    assert 0.45 <= seconds < 0.9, seconds


@pytest.mark.parametrize("policy,observed", [
    ("DENY_EPERM", EPERM), ("DENY_EIO", EIO), ("CONTINUE", 0), ("KILL", None)])
def test_answer_never_completed_gets_the_policy(sysgate_bin, rundir_base, policy, observed):
    r, errnos, seconds = calls(rundir_base, 1, f"{DEFER} --never --policy {policy}",
                               "--handler-timeout", "300")
    assert "did not answer getppid within --handler-timeout 300 ms" in r.stderr, r.stderr
    if observed is None:
        assert r.returncode == 128 + 9, r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert errnos == [observed]
    assert 0.25 <= seconds < 5, seconds


def test_past_the_in_flight_limit_the_policy_applies(sysgate_bin, rundir_base):
    extra = 6
    r, errnos, _ = calls(rundir_base, IN_FLIGHT_LIMIT + extra,
                         f"{DEFER} --delay-ms 2000 --policy DENY_EPERM")
    assert r.returncode == 0, r.stderr
    assert errnos == [0] * IN_FLIGHT_LIMIT + [EPERM] * extra


def test_only_the_late_answer_times_out_while_the_worker_is_alive(sysgate_bin, rundir_base,
                                                                   tmp_path):
    """The first answer is never completed, later ones are: the worker keeps
    talking, so only that notification gets the policy at --handler-timeout;
    the worker is not restarted and serves the calls after it."""
    code = ("import ctypes, sys, threading, time\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "nr = int(sys.argv[1]); res = {}\n"
            "def call(name):\n"
            "    ctypes.set_errno(0); r = libc.syscall(nr)\n"
            "    res[name] = ctypes.get_errno() if r < 0 else 0\n"
            "a = threading.Thread(target=call, args=('first',)); a.start()\n"
            "time.sleep(0.1)  # usually pending first; the check below does not rely on it\n"
            "for i in range(3): call(f'later{i}')\n"
            "a.join(); call('after')\n"
            "print(sorted(res.values()), res['after'], flush=True)\n")
    r, events = audited(rundir_base, tmp_path, 400,
                        "--never-first --delay-ms 20 --policy DENY_EPERM", code)
    # Exactly one call (the first to arrive) got the policy; the one after
    # its timeout was served by the same worker.
    assert r.stdout == f"[0, 0, 0, 0, {EPERM}] 0\n"
    assert events.count("handler_timeout") == 1
    assert "worker_failed" not in events and "worker_restart" not in events


def test_a_timed_out_answer_still_counts_until_it_arrives(sysgate_bin, rundir_base, tmp_path):
    """The SDK counts an unanswered notification against max_inflight until
    it answers, so the supervisor must too, even after that notification
    timed out: 64 threads keep the worker's window full while one answer is
    never given. Overflow gets the policy (EPERM); the worker is never taken
    for a protocol breaker and restarted."""
    code = ("import ctypes, sys, threading\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "nr = int(sys.argv[1]); seen = set()\n"
            "def loop():\n"
            "    for _ in range(15):\n"
            "        ctypes.set_errno(0); r = libc.syscall(nr)\n"
            "        seen.add(ctypes.get_errno() if r < 0 else 0)\n"
            "ts = [threading.Thread(target=loop) for _ in range(64)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print(sorted(seen), flush=True)\n")
    r, events = audited(rundir_base, tmp_path, 300,
                        "--never-first --delay-ms 20 --threads 4 --policy DENY_EPERM", code)
    assert r.stdout == f"[0, {EPERM}]\n"
    assert events.count("handler_timeout") == 1
    assert "worker_failed" not in events, r.stderr
