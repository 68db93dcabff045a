"""Issue 12, items 7, 9 and 14: each worker's own domain (a link socket only
the process sysgate started may use), a bound on what a worker's records may
cost the supervisor, and workers given as #! scripts. Each test runs the
attack or the fault with the real binaries."""
import errno
import os
import shutil
import subprocess
import textwrap

import pytest

from conftest import (BUILD, PY, SYSGATE, TIMEOUT, copy_for_nobody, env_with, is_root,
                      read_audit, sdk_env, stage_sdk, write_script)

MISBEHAVE = os.path.join(BUILD, "tests", "workers", "sg-misbehave")
BASE = 0x7F5E0000  # --worker-uid-base's default
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all"]

# Calls getppid until the worker answers continue (a real ppid) instead of
# its policy EPERM (-1), at most 20 s; prints the number of denied calls.
UNTIL_SERVED = """
import os, sys, time
end, denied = time.monotonic() + 20, 0
while os.getppid() < 0:
    denied += 1
    if time.monotonic() > end:
        sys.exit("never served")
print(denied)
"""


def sibling_attack(rundir_base, audit, *opts, prefix=(), sysgate=SYSGATE, misbehave=MISBEHAVE):
    # Worker 0 dials worker 1's link and holds it, redialling whenever it
    # is dropped. Worker 1 exits on its first call (policy EPERM while it
    # is down) and is restarted: its new instance must get its link.
    attacker = f"{misbehave} --syscall getpgrp sibling"
    victim = f"{misbehave} --once --policy eperm --syscall getppid exit"
    r = subprocess.run([*prefix, sysgate, "run", *opts, "--audit", str(audit),
                        "--worker-start-timeout", "3000", "--worker", attacker,
                        "--worker", victim, "--", PY, "-c", UNTIL_SERVED],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert "sg-misbehave: sibling: dialing" in r.stderr
    assert "worker_restarted" in [e["type"] for e in read_audit(audit)], r.stderr
    return r.stderr


def test_a_sibling_cannot_take_a_workers_link(rundir_base, tmp_path):
    # Workers sharing a uid (--worker-user, or an unprivileged sysgate)
    # reach each other's sockets: the supervisor refuses the wrong peer.
    opts = ["--worker-user", "nobody"] if is_root() else []
    stderr = sibling_attack(rundir_base, tmp_path / "audit.jsonl", *opts)
    assert "sibling: stat errno 0" in stderr
    assert "refused a connection to its link from pid" in stderr


@pytest.mark.skipif(not is_root() or not shutil.which("setpriv"), reason="needs root for setpriv")
def test_a_sibling_cannot_take_a_workers_link_without_root(rundir_base, pubdir):
    # sysgate as nobody: its workers share its uid.
    sysgate, misbehave = (copy_for_nobody(p, pubdir) for p in (SYSGATE, MISBEHAVE))
    os.chmod(rundir_base, 0o1777)  # sysgate as nobody makes its runtime directory there
    audit = os.path.join(pubdir, "audit")
    os.mkdir(audit)
    os.chmod(audit, 0o777)
    stderr = sibling_attack(rundir_base, os.path.join(audit, "a.jsonl"), prefix=NOBODY,
                            sysgate=sysgate, misbehave=misbehave)
    assert "sibling: stat errno 0" in stderr
    assert "refused a connection to its link from pid" in stderr


@pytest.mark.skipif(not is_root(), reason="own uids need root")
def test_workers_of_a_root_sysgate_have_their_own_uids(rundir_base, tmp_path):
    # By default each --worker runs as a uid of its own: a sibling's
    # directory, hence its socket, is out of reach.
    stderr = sibling_attack(rundir_base, tmp_path / "audit.jsonl")
    assert f"sibling: stat errno {errno.EACCES}" in stderr
    assert "refused a connection" not in stderr
    p = subprocess.run([SYSGATE, "run", "--worker", f"{MISBEHAVE} --syscall getpgrp ok",
                        "--worker", f"{MISBEHAVE} --syscall getpgrp ok", "--replicas", "2",
                        "--", "sh", "-c", "ps -o uid= -o args= --ppid $PPID"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert p.returncode == 0, p.stderr
    uids = sorted(int(l.split()[0]) for l in p.stdout.splitlines() if "sg-misbehave" in l)
    assert uids == [BASE, BASE + 1, BASE + 1], p.stdout


@pytest.mark.skipif(not is_root(), reason="own uids need root")
def test_worker_uid_base_refuses_a_range_users_hold(rundir_base):
    r = subprocess.run([SYSGATE, "run", "--worker-uid-base", "65534", "--worker",
                        f"{MISBEHAVE} ok", "--", "true"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 125
    assert "its uid 65534 is user \"nobody\"" in r.stderr


# --- item 14: workers given as #! scripts ------------------------------------------------


def test_a_shell_script_worker_execs_a_real_worker(rundir_base, pubdir):
    script = write_script(pubdir, "worker.sh",
                          f'#!/bin/sh\nexec {MISBEHAVE} "$@"\n', mode=0o755)
    r = subprocess.run([SYSGATE, "run", "--worker", f"{script} --syscall getppid return", "--",
                        PY, "-c", "import os; print(os.getppid())"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "0\n"  # the worker's answer, not sysgate's pid


def test_a_wrapper_script_whose_child_is_the_worker(rundir_base, pubdir):
    # No exec: the worker that connects is the script's child, in the
    # session sysgate started it in.
    script = write_script(pubdir, "wrapper.sh",
                          f'#!/bin/sh\n{MISBEHAVE} "$@"\nexit $?\n', mode=0o755)
    r = subprocess.run([SYSGATE, "run", "--worker", f"{script} --syscall getppid return", "--",
                        PY, "-c", "import os; print(os.getppid())"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "0\n"
    assert "refused" not in r.stderr


def test_a_python_script_worker_found_through_env(rundir_base, pubdir):
    lib = stage_sdk(pubdir)
    script = write_script(pubdir, "faker.py", textwrap.dedent("""\
        #!/usr/bin/env python3
        from sysgate import Handler, NotifAction, serve

        class Fake(Handler):
            def handle(self, ctx):
                return NotifAction.returns(4321)

        raise SystemExit(serve([("getpid", Fake())]))
        """), mode=0o755)
    env = dict(sdk_env(rundir_base, lib, pubdir), PATH="/usr/bin:/bin")
    r = subprocess.run([SYSGATE, "run", "--worker", script, "--", PY, "-c",
                        "import os; print(os.getpid())"],
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "4321\n"


def test_a_script_whose_interpreter_is_missing_is_named(rundir_base, pubdir):
    script = write_script(pubdir, "orphan.sh", "#!/nonexistent/sh\n", mode=0o755)
    r = subprocess.run([SYSGATE, "run", "--worker", script, "--", "true"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 125
    assert f"{script} is a script and its interpreter (its #! line) cannot be run" in r.stderr
    assert "--worker 'INTERPRETER SCRIPT'" in r.stderr
    assert "execve failed" not in r.stderr


# --- item 9: a worker flooding the audit log with records ---------------------------------

SANITIZED = "-fsanitize" in os.environ.get("SYSGATE_TEST_CFLAGS", "")


def peak_rss_kib(stderr):
    line = [l for l in stderr.splitlines() if "peak resident memory:" in l]
    assert len(line) == 1, stderr
    return int(line[0].split(":")[-1].split()[0])


def test_a_record_flood_is_bounded_and_fails_the_worker(rundir_base, tmp_path):
    # 2,000 records of 64 KiB "[[],[],...]" (each ~2 MB once parsed) as fast
    # as the link takes them; unbounded, the supervisor grew by gigabytes.
    # Its address space is capped so that an unbounded supervisor fails
    # rather than take the machine's memory (not under ASan, whose shadow
    # memory is reserved address space).
    audit = tmp_path / "audit.jsonl"
    worker = f"{MISBEHAVE} --once --policy continue --syscall getppid flood"
    cap = [] if SANITIZED else ["prlimit", "--as=3000000000", "--"]
    r = subprocess.run(cap + [SYSGATE, "run", "-v", "--audit", str(audit), "--worker", worker,
                              "--", PY, "-c", "import os; print(os.getppid() > 0)"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "True\n"
    assert "sent records faster than the audit log takes them" in r.stderr
    assert peak_rss_kib(r.stderr) < (600 if SANITIZED else 200) * 1024, r.stderr[-3000:]
    events = read_audit(audit)
    failed = [e for e in events if e["type"] == "worker_failed"]
    assert [e["kind"] for e in failed] == ["flood"], failed
    assert 0 < len([e for e in events if e["type"] == "record"]) < 2000
    assert events[-1]["type"] == "sandbox_exit"
