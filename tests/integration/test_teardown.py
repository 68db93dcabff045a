"""Teardown that the command cannot dodge (issue 12.1): the sandbox's cgroup is
killed through cgroup.kill, opened before the command ran, so a double-forked
daemon dies with the run even when sysgate's RLIMIT_NOFILE was lowered to 0
(by the command, or by anyone) and sysgate can open no file at the end. The
audit log is complete (sandbox_exit last)."""
import os
import signal
import subprocess

import pytest

from conftest import PY, SYSGATE, TIMEOUT, copy_for_nobody, is_root, live_pids_with, \
    read_audit, run


def cgroup2_dir():
    """Our cgroup's directory on the cgroup2 hierarchy, or None."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(l.split(":", 2)[2].strip() for l in f if l.startswith("0::"))
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                fstype = fields[fields.index("-") + 1]
                if fstype == "cgroup2" and fields[3] == "/":
                    return fields[4] + (path if path != "/" else "")
    except (OSError, StopIteration):
        pass
    return None


def have_cgroup_kill():
    d = cgroup2_dir()
    return is_root() and d is not None and os.access(os.path.join(d, "cgroup.procs"), os.W_OK)


NO_LSAN = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")

needs_cgroup = pytest.mark.skipif(not have_cgroup_kill(),
                                  reason="needs root and a writable cgroup2 hierarchy")

# Says "ready", waits for a line on stdin (the test lowers sysgate's file
# limit meanwhile), lowers it itself too (the attack; a deny rule may refuse
# it), double-forks a daemon that sleeps argv[1] seconds, and then exits
# (argv[2] == "exit") or sleeps.
DAEMONIZER = """
import os, resource, sys, time
print("ready", flush=True)
sys.stdin.readline()
try:
    resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (0, 0))
except OSError:
    pass
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execvp("sleep", ["sleep", sys.argv[1]])
    os._exit(0)
os.wait()
print("daemon", flush=True)
if sys.argv[2] != "exit":
    time.sleep(float(sys.argv[1]))
"""


def run_daemonizer(args, marker, then, exe=SYSGATE, prefix=()):
    """Runs DAEMONIZER; lowers sysgate's RLIMIT_NOFILE to 0 from outside once
    it is up; `then` is "exit", "signal" (SIGTERM to sysgate once the daemon
    runs) or "wait" (for --timeout). Returns (status, stdout, stderr)."""
    # LeakSanitizer (the Sanitize build) needs files at exit, which is the
    # point here: it cannot run.
    p = subprocess.Popen([*prefix, exe, "run", *args, "--", PY, "-c", DAEMONIZER, marker, then],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=NO_LSAN)
    try:
        assert p.stdout.readline() == "ready\n"
        # As sysgate's user (setpriv execs sysgate: same pid): root without
        # CAP_SYS_RESOURCE may not change another user's limits.
        subprocess.run([*prefix, "prlimit", "--pid", str(p.pid), "--nofile=0:0"], check=True,
                       timeout=TIMEOUT)
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline() == "daemon\n"
        assert live_pids_with(marker), "the daemon did not start"
        if then == "signal":
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=TIMEOUT)
        return p.returncode, out, err
    finally:
        p.kill()
        p.wait()


@needs_cgroup
@pytest.mark.parametrize("then", ["exit", "signal"])
def test_daemon_dies_with_the_run_though_sysgate_cannot_open_files(sysgate_bin, pubdir,
                                                                   no_leaks, then):
    audit = os.path.join(pubdir, "audit.jsonl")
    status, _, err = run_daemonizer(["-v", "--audit", audit], no_leaks, then)
    assert status == (0 if then == "exit" else 128 + signal.SIGTERM), err
    assert "teardown through cgroup.kill" in err
    recs = read_audit(audit)
    assert recs[0]["type"] == "sandbox_start" and recs[-1]["type"] == "sandbox_exit"
    # no_leaks: the daemon is gone


@needs_cgroup
def test_timeout_kills_the_daemon_of_a_child_that_lowered_limits(sysgate_bin, pubdir, no_leaks):
    audit = os.path.join(pubdir, "audit.jsonl")
    status, _, err = run_daemonizer(["--timeout", "8", "--kill-after", "1", "--audit", audit],
                                    no_leaks, "wait")
    assert status == 124, err
    recs = read_audit(audit)
    assert recs[-1]["type"] == "sandbox_exit" and recs[-1]["reason"] == "timeout"


@needs_cgroup
def test_sandbox_cgroup_is_removed_after_the_run(sysgate_bin):
    r = run("-v", "--", "sh", "-c", "cat /proc/self/cgroup")
    assert r.returncode == 0
    mine = [l for l in r.stdout.splitlines() if l.startswith("0::")][0]
    name = os.path.basename(mine)
    assert name.startswith("sysgate-")  # the command was in it
    assert not os.path.exists(os.path.join(cgroup2_dir(), name))


@pytest.mark.skipif(not is_root(), reason="needs root to switch to nobody")
def test_unprivileged_fallback_never_claims_a_clean_teardown(sysgate_bin, pubdir):
    # Without cgroup write access sysgate walks /proc, which needs files. With
    # its hard limit at 0 it cannot: it says so and exits 125, not 0.
    marker = f"9876.{os.getpid()}"
    exe = copy_for_nobody(SYSGATE, pubdir)
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
              "--inh-caps=-all"]
    try:
        status, _, err = run_daemonizer(["-v"], marker, "exit", exe=exe, prefix=prefix)
    finally:
        left = live_pids_with(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert status == 125, err
    assert "some may still run" in err
    assert "teardown walks /proc" in err
