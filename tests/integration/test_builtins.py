"""Builtins: --max-procs and --hostname, observed by real programs."""
import os
import subprocess
import time

import pytest

from conftest import PY, run, write_script

FORKER = """
import os, sys
r, w = os.pipe()
kids, err = [], 0
for i in range(int(sys.argv[1])):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)   # stay alive until the parent is done forking
        os._exit(0)
    kids.append(pid)
os.close(w)
for k in kids:
    os.waitpid(k, 0)
print(len(kids), err)
"""


@pytest.mark.parametrize("limit", [1, 2, 4, 7])
def test_max_procs_counts_live_processes(sysgate_bin, limit):
    r = run("--max-procs", str(limit), "--", PY, "-c", FORKER, "20")
    # The interpreter itself is one of the `limit` processes.
    assert r.stdout.split() == [str(limit - 1), "11"], r.stderr  # EAGAIN


def test_max_procs_does_not_limit_below_the_count(sysgate_bin):
    r = run("--max-procs", "30", "--", PY, "-c", FORKER, "20")
    assert r.stdout.split() == ["20", "0"]


def test_max_procs_shell_forking_past_the_limit(sysgate_bin, no_leaks):
    # sh plus two background sleeps is three; the third fork is refused.
    script = f"sleep {no_leaks} & sleep {no_leaks} & sleep {no_leaks} & echo all-forked"
    t0 = time.monotonic()
    r = run("--max-procs", "3", "--", "sh", "-c", script)
    assert r.returncode == 2
    assert "Cannot fork" in r.stderr and "all-forked" not in r.stdout
    assert time.monotonic() - t0 < 30  # the sleeps were killed, not waited for


def test_max_procs_frees_slots_when_processes_exit(sysgate_bin):
    r = run("--max-procs", "2", "--", "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true || exit 7; done; echo done")
    assert r.returncode == 0 and r.stdout == "done\n"


def test_max_procs_counts_vfork_and_posix_spawn(sysgate_bin):
    code = ("import os\n"
            "try:\n"
            "    os.posix_spawn('/bin/true', ['true'], os.environ)\n"
            "    print('spawned')\n"
            "except OSError as e:\n"
            "    print('errno', e.errno)\n")
    assert run("--max-procs", "1", "--", PY, "-c", code).stdout == "errno 11\n"
    assert run("--max-procs", "2", "--", PY, "-c", code).stdout == "spawned\n"


def test_hostname_changes_nodename_only(sysgate_bin):
    real = subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout
    r = run("--hostname", "sg-test-host", "--", "sh", "-c", "uname -n; uname -srm")
    assert r.returncode == 0
    assert r.stdout == "sg-test-host\n" + real


def test_hostname_seen_by_python(sysgate_bin):
    r = run("--hostname", "a" * 64, "--", PY, "-c", "import os; print(os.uname().nodename)")
    assert r.stdout == "a" * 64 + "\n"


def test_hostname_bad_buffer_is_efault(sysgate_bin):
    code = ("import ctypes\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.uname(ctypes.c_void_p(8)), ctypes.get_errno())\n")
    r = run("--hostname", "h", "--", PY, "-c", code)
    assert r.stdout == "-1 14\n"


def test_without_hostname_uname_is_untouched(sysgate_bin):
    real = subprocess.run(["uname", "-n"], capture_output=True, text=True).stdout
    assert run("--", "uname", "-n").stdout == real
