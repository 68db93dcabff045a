"""sysgate itself run as an unprivileged user (nobody), via setpriv."""
import os
import shutil
import subprocess

import pytest

from conftest import SYSGATE, SYSTEM_RO, copy_for_nobody, is_root, read_audit

pytestmark = pytest.mark.skipif(not is_root() or not shutil.which("setpriv"),
                                reason="needs root to switch to nobody")


def as_nobody(exe, *args, timeout=60):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "--inh-caps=-all", exe, *args],
                          capture_output=True, text=True, timeout=timeout)


def test_unprivileged_run_with_builtins_landlock_and_audit(sysgate_bin, pubdir):
    exe = copy_for_nobody(SYSGATE, pubdir)
    outdir = os.path.join(pubdir, "out")
    os.mkdir(outdir)
    os.chmod(outdir, 0o777)
    logdir = os.path.join(pubdir, "log")  # beneath no -w path: sysgate refuses that
    os.mkdir(logdir)
    os.chmod(logdir, 0o777)
    audit = os.path.join(logdir, "audit.jsonl")
    r = as_nobody(exe, "run", *SYSTEM_RO, "-w", outdir, "--hostname", "nobody-box",
                  "--max-procs", "4", "--audit", audit, "--trap", "openat", "--",
                  "sh", "-c", f"id -u; uname -n; echo hi > {outdir}/f; cat {outdir}/f; "
                  "cat /root/.profile 2>/dev/null || echo denied")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["65534", "nobody-box", "hi", "denied"]
    recs = read_audit(audit)
    assert any(x["type"] == "syscall" and x["syscall"] == "openat" for x in recs)


def test_unprivileged_exit_status_and_timeout(sysgate_bin, pubdir, no_leaks):
    exe = copy_for_nobody(SYSGATE, pubdir)
    assert as_nobody(exe, "run", "--", "sh", "-c", "exit 7").returncode == 7
    assert as_nobody(exe, "run", "--timeout", "0.5", "--", "sleep", no_leaks).returncode == 124


def test_unprivileged_command_cannot_reach_the_supervisor(sysgate_bin, pubdir):
    # Same uid as the supervisor: only Landlock and non-dumpability stand
    # between the command and the supervisor's memory and fds.
    exe = copy_for_nobody(SYSGATE, pubdir)
    r = as_nobody(exe, "run", "--trap", "openat", "--", "sh", "-c",
                  "head -c1 /proc/$PPID/mem >/dev/null && echo opened-mem;"
                  "ls /proc/$PPID/fd >/dev/null 2>&1 && echo listed-fds; kill -STOP $PPID;"
                  "echo done")
    assert r.returncode == 0
    assert r.stdout == "done\n", r.stdout + r.stderr
