"""--max-procs through the pids cgroup controller (issue 12.6): nothing is
trapped, so no fork can fail with a spurious EINTR; -v says which mechanism
is in use. Without a pids cgroup (an unprivileged sysgate) fork, vfork, clone
and clone3 are trapped as before."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import PY, SYSGATE, TIMEOUT, copy_for_nobody, is_root, run

# clone3 with a NULL, zero-sized argument: ENOSYS, from the kernel filter's
# argument rules (so libc falls back to clone) whatever enforces --max-procs.
CLONE3 = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(435, None, 0)
print(ctypes.get_errno() if r < 0 else 0)
"""

# One fork, waited for.
FORK = "import os; pid = os.fork(); os._exit(0) if pid == 0 else os.waitpid(pid, 0)"

# Starts 8 threads; prints "threads ok" or the error.
THREADS = """
import threading
try:
    ts = [threading.Thread(target=lambda: None) for _ in range(8)]
    [t.start() for t in ts]; [t.join() for t in ts]; print("threads ok")
except RuntimeError as e:
    print("refused")
"""


def pids_cgroup_available():
    if not is_root():
        return False
    return any(os.path.exists(p) for p in ("/sys/fs/cgroup/pids/cgroup.procs",
                                           "/sys/fs/cgroup/cgroup.controllers",
                                           "/sys/fs/cgroup/unified/cgroup.controllers"))


def as_nobody(exe, *args):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "--inh-caps=-all", exe, "run", *args],
                          capture_output=True, text=True, timeout=TIMEOUT)


def mode(stderr):
    for line in stderr.splitlines():
        if "--max-procs" in line and "enforced by" in line:
            return "cgroup" if "pids.max" in line else "trap"
    return None


@pytest.mark.skipif(not pids_cgroup_available(), reason="needs root and a pids cgroup")
def test_max_procs_uses_the_pids_cgroup_and_traps_nothing(sysgate_bin, tmp_path):
    audit = tmp_path / "audit.jsonl"
    r = run("-v", "--max-procs", "4", "--audit", str(audit), "--", PY, "-c", FORK)
    assert r.returncode == 0, r.stderr
    assert mode(r.stderr) == "cgroup", r.stderr
    assert "trapping" not in r.stderr
    # Nothing trapped: the fork left no syscall record (the trapping
    # --max-procs records every fork, vfork and clone).
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert records and not [x for x in records if x.get("type") == "syscall"], records


@pytest.mark.skipif(not pids_cgroup_available(), reason="needs root and a pids cgroup")
def test_pids_cgroup_limit_holds_for_a_daemon_that_left_the_tree(sysgate_bin, no_leaks):
    # A double-forked daemon stays in the cgroup and keeps its slot.
    script = (f"(setsid sleep {no_leaks} &); sleep 0 & wait; "
              "sh -c 'sleep 0 & wait' 2>/dev/null && echo second-fork-ok || echo refused")
    r = run("-v", "--max-procs", "3", "--", "sh", "-c", script)
    assert mode(r.stderr) == "cgroup"
    assert r.stdout == "refused\n", r.stderr


@pytest.mark.skipif(not pids_cgroup_available(), reason="needs root and a pids cgroup")
def test_threads_count_under_the_pids_cgroup(sysgate_bin):
    r = run("-v", "--max-procs", "1", "--", PY, "-c", THREADS)
    assert mode(r.stderr) == "cgroup"
    assert r.stdout == "refused\n"
    assert run("--max-procs", "16", "--", PY, "-c", THREADS).stdout == "threads ok\n"


@pytest.mark.skipif(not is_root() or not shutil.which("setpriv"), reason="needs root for nobody")
def test_unprivileged_max_procs_falls_back_to_trapping(sysgate_bin, pubdir):
    exe = copy_for_nobody(SYSGATE, pubdir)
    r = as_nobody(exe, "-v", "--max-procs", "1", "--", PY, "-c", CLONE3)
    assert mode(r.stderr) == "trap", r.stderr
    assert r.stdout == "38\n"  # ENOSYS: trapped
    r = as_nobody(exe, "--max-procs", "1", "--", PY, "-c", THREADS)
    assert r.stdout == "threads ok\n"  # threads are not processes there


@pytest.mark.parametrize("name, warns", [("close", True), ("clone", True), ("getppid", False)])
def test_trapping_a_syscall_eintr_breaks_warns(sysgate_bin, name, warns):
    r = run("--trap", name, "--", "true")
    assert r.returncode == 0
    assert (f"warning: trapping {name}: " in r.stderr and "EINTR" in r.stderr) == warns
