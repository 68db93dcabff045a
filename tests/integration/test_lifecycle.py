"""--timeout, signals to sysgate, and the process tree: nothing outlives a run."""
import os
import signal
import subprocess
import time

import pytest

from conftest import PY, SYSGATE, landlock_abi, read_audit, run


def test_timeout_kills_a_sleeping_program(sysgate_bin, no_leaks):
    t0 = time.monotonic()
    r = run("--timeout", "0.5", "--", "sleep", no_leaks)
    assert r.returncode == 124
    assert "--timeout" in r.stderr
    assert time.monotonic() - t0 < 20


def test_timeout_kills_the_whole_tree(sysgate_bin, no_leaks):
    script = f"sleep {no_leaks} & (sleep {no_leaks} &) ; setsid sleep {no_leaks} & wait"
    r = run("--timeout", "1", "--", "sh", "-c", script)
    assert r.returncode == 124  # no_leaks asserts every sleep is gone


def test_timeout_not_reached(sysgate_bin):
    assert run("--timeout", "30", "--", "/bin/true").returncode == 0


def test_orphans_are_killed_when_the_command_exits(sysgate_bin, no_leaks):
    # The daemonized sleep would outlive sh; sysgate ends it with the run.
    r = run("--", "sh", "-c", f"(setsid sleep {no_leaks} &); echo started")
    assert r.returncode == 0 and r.stdout == "started\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_sysgate_ends_the_sandbox(sysgate_bin, pubdir, no_leaks, sig):
    audit = os.path.join(pubdir, "audit.jsonl")
    p = subprocess.Popen([SYSGATE, "run", "--audit", audit, "--trap", "getppid", "--",
                          "sh", "-c", f"echo ready; sleep {no_leaks} & exec sleep {no_leaks}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"  # the sandbox is up
        p.send_signal(sig)
        assert p.wait(timeout=20) == 128 + sig
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    recs = read_audit(audit)
    assert recs[-1]["type"] == "sandbox_exit"
    assert recs[-1]["reason"] == "signal" and recs[-1]["signal"] == sig
    assert recs[-1]["status"] == 128 + sig


def test_command_exit_while_children_run(sysgate_bin, no_leaks):
    t0 = time.monotonic()
    r = run("--", "sh", "-c", f"sleep {no_leaks} & exit 5")
    assert r.returncode == 5
    assert time.monotonic() - t0 < 20


def test_command_runs_in_its_own_process_group(sysgate_bin):
    code = "import os; print(os.getpgrp() == os.getpid(), os.getpgrp() != os.getpgid(os.getppid()))"
    r = run("--", PY, "-c", code)
    assert r.stdout == "True True\n"


@pytest.mark.skipif(landlock_abi() < 6, reason="needs Landlock signal scoping (ABI 6)")
def test_command_cannot_signal_the_supervisor(sysgate_bin):
    # Landlock signal scoping (ABI 6+): the supervisor is outside the domain.
    r = run("--", PY, "-c",
            "import os, signal\n"
            "try:\n    os.kill(os.getppid(), signal.SIGTERM); print('sent')\n"
            "except PermissionError: print('refused')\n")
    assert r.returncode == 0 and r.stdout == "refused\n"
