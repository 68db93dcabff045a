"""The memory proxy end to end (docs/handlers.md#memory-accessors; docs/protocol.md "What the supervisor
enforces"): a raw-protocol worker (sg-misbehave's mem* modes) reads and writes
the trapped process's memory through the real supervisor, rightly and
wrongly. The tests assert what the worker was answered (its one line per
snapshot, which reaches sysgate's stderr), what the program observed, that
sysgate exits with the program's status and that no worker outlives it."""
import os
import re

import pytest

from conftest import BUILD, PY, assert_workers_gone, env_with, read_audit, run, syscalls

MISBEHAVE = os.path.join(BUILD, "tests", "workers", "sg-misbehave")

ESRCH, EFAULT, EPERM = 3, 14, 1
MAX_MEM = 1 << 20  # PROTO_MAX_MEM

# Changes into /tmp twice (each a trapped chdir whose args[0] is a valid
# pointer to the path) and prints where it ended up.
CHDIR_TWICE = "import os; os.chdir('/tmp'); os.chdir('/tmp'); print(os.getcwd(), flush=True)"

# Calls getpgid(0) through syscall(2) once (Python's startup never does);
# prints the errno it saw (0: ok).
GETPGID_ERRNO = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
ctypes.set_errno(0)
r = libc.syscall(121, 0)
print(ctypes.get_errno() if r < 0 else 0, flush=True)
"""


def sysgate(tmp_path, rundir_base, worker, *argv, **kw):
    """`sysgate run --worker WORKER -- ARGV...` with an audit log; asserts
    that every worker process it started (restarts too) is gone once it
    exited. Returns (completed process, audit records)."""
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", worker, "--", *argv,
            env=env_with(rundir_base), **kw)
    recs = read_audit(audit)
    assert [x for x in recs if x["type"] == "worker_start"], r.stderr
    assert_workers_gone(audit)
    exits = [x for x in recs if x["type"] == "sandbox_exit"]
    assert len(exits) == 1 and exits[0]["reason"] == "exit", recs
    assert r.returncode == exits[0]["status"], "sysgate did not exit with the program's status"
    return r, recs


def lines(r, prefix):
    """The worker's `PREFIX: ...` lines, in order."""
    return [l for l in r.stderr.splitlines() if l.startswith(prefix + ": ")]


def no_confusion(r):
    """Nothing the worker or the supervisor should never say."""
    assert "MemReply for request" not in r.stderr  # a reply to the wrong request
    assert "unexpected message kind" not in r.stderr
    assert "malformed" not in r.stderr and "restarting" not in r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr


def served(tmp_path, rundir_base, syscall, mode, *argv):
    """sysgate() with sg-misbehave in MODE on SYSCALL as the worker and ARGV
    as the program, which must exit 0. Returns (completed process, the
    worker's MODE lines)."""
    r, _ = sysgate(tmp_path, rundir_base, f"{MISBEHAVE} --syscall {syscall} {mode}", *argv)
    assert r.returncode == 0, r.stderr
    return r, lines(r, mode)


def chdir_twice(tmp_path, rundir_base, mode):
    """CHDIR_TWICE with sg-misbehave in MODE on chdir: whatever its memory
    request is answered, the program still gets to /tmp, and nothing is
    confused. Returns (completed process, the worker's MODE lines)."""
    r, got = served(tmp_path, rundir_base, "chdir", mode, PY, "-c", CHDIR_TWICE)
    assert r.stdout == "/tmp\n"
    no_confusion(r)
    return r, got


# --- served -------------------------------------------------------------------------

def test_memread_reads_the_path_cat_opens(sysgate_bin, rundir_base, tmp_path):
    r, _ = sysgate(tmp_path, rundir_base, f"{MISBEHAVE} --syscall openat memread",
                   "cat", "/etc/hostname")
    assert r.returncode == 0, r.stderr
    with open("/etc/hostname") as f:
        assert r.stdout == f.read()
    mem = [l for l in r.stderr.splitlines() if re.match(r"^memread4?: ", l)]
    assert "memread: /etc/hostname" in mem, r.stderr
    i = mem.index("memread: /etc/hostname")
    assert mem[i + 1] == "memread4: " + b"/etc".hex()  # 2f657463
    # Every openat was read, and every read succeeded.
    assert not [l for l in mem if "error=" in l], r.stderr
    no_confusion(r)


def test_memread_and_exit_status_of_a_failing_program(sysgate_bin, rundir_base, tmp_path):
    missing = f"/nonexistent-{os.getpid()}"
    r, _ = sysgate(tmp_path, rundir_base, f"{MISBEHAVE} --syscall openat memread",
                   "cat", missing)
    assert r.returncode == 1
    # cat writes its message in pieces, which may land between the worker's
    # lines (its stdout is sysgate's stderr too).
    assert "No such file or directory" in r.stderr
    assert f"memread: {missing}" in lines(r, "memread")


def test_memread_while_other_snapshots_arrive(sysgate_bin, rundir_base, tmp_path):
    """Eight threads open distinct paths at once: snapshots reach the worker
    while it waits for a MemReply, and every reply matches its request."""
    code = ("import os, threading\n"
            "def work(t):\n"
            "    for i in range(25):\n"
            "        try: os.open(f'/nonexistent-mp-{t}-{i}', os.O_RDONLY)\n"
            "        except FileNotFoundError: pass\n"
            "ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print('done', flush=True)\n")
    r, _ = sysgate(tmp_path, rundir_base, f"{MISBEHAVE} --syscall openat memread",
                   PY, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    seen = [l[len("memread: "):] for l in lines(r, "memread")]
    want = sorted(f"/nonexistent-mp-{t}-{i}" for t in range(8) for i in range(25))
    assert sorted(p for p in seen if p.startswith("/nonexistent-mp-")) == want
    assert len(lines(r, "memread4")) == len(seen)
    no_confusion(r)


def test_memwrite_makes_getcwd_return_what_the_worker_wrote(sysgate_bin, rundir_base,
                                                            tmp_path):
    r, recs = sysgate(tmp_path, rundir_base, f"{MISBEHAVE} --syscall getcwd memwrite",
                      PY, "-c", "import os; print(os.getcwd())")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/virtual\n"
    assert lines(r, "memwrite") and set(lines(r, "memwrite")) == {"memwrite: error=0"}
    calls = syscalls(recs, "getcwd")
    assert calls and all(x["action"] == "return" and x["value"] == 9 for x in calls), calls
    no_confusion(r)


# --- refused: a MemReply with an errno, never an access ------------------------------

def test_memstale_a_seq_the_worker_does_not_hold_is_esrch(sysgate_bin, rundir_base,
                                                          tmp_path):
    r, got = chdir_twice(tmp_path, rundir_base, "memstale")
    assert got == [f"memstale: error={ESRCH}"] * 2, r.stderr


def test_memafter_a_seq_already_answered_is_esrch(sysgate_bin, rundir_base, tmp_path):
    r, got = chdir_twice(tmp_path, rundir_base, "memafter")
    # The first reply comes before the second chdir is answered; the second
    # may race the end of the run (Goodbye), so it may be missing.
    assert got and set(got) == {f"memafter: error={ESRCH}"}, r.stderr


def test_membad_address_zero_is_efault(sysgate_bin, rundir_base, tmp_path):
    r, got = chdir_twice(tmp_path, rundir_base, "membad")
    assert got == [f"membad: error={EFAULT}"] * 2, r.stderr


def test_membig_over_the_cap_is_a_violation(sysgate_bin, rundir_base, tmp_path):
    """A request over PROTO_MAX_MEM fails the codec's check: a protocol
    violation, not a reply. The held notification gets the registration's
    policy, the worker is killed and restarted."""
    r, recs = sysgate(tmp_path, rundir_base,
                      f"{MISBEHAVE} --policy eperm --syscall getpgid membig",
                      PY, "-c", GETPGID_ERRNO)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{EPERM}\n"
    assert f"membig: requesting {MAX_MEM + 1} bytes" in lines(r, "membig")
    assert not [l for l in lines(r, "membig") if "error=" in l], r.stderr  # never served
    assert "sent a malformed message" in r.stderr
    assert f"read of {MAX_MEM + 1} bytes exceeds the {MAX_MEM}-byte cap" in r.stderr
    failed = [x for x in recs if x["type"] == "worker_failed"]
    assert len(failed) == 1 and failed[0]["kind"] == "violation", recs
    assert failed[0]["restart"] is True and failed[0]["pending"] == 1
    call = syscalls(recs, "getpgid")
    assert len(call) == 1 and call[0]["exception"] == "DENY_EPERM", call
    assert call[0]["errno"] == EPERM


# --- edges of the child's address space ----------------------------------------------

# Maps two pages of '.', unmaps the second, and calls getpgid with a pointer
# 4 bytes before the hole (args[0]); prints the 4 bytes before the hole.
STRADDLE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_void_p]
base = libc.mmap(None, 8192, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
ctypes.memset(base, ord('.'), 8192)
libc.munmap(base + 4096, 4096)
libc.syscall(121, base + 4092)
print(ctypes.string_at(base + 4092, 4).decode(), flush=True)
"""


def test_read_straddling_a_hole_returns_the_readable_bytes(sysgate_bin, rundir_base,
                                                            tmp_path):
    r, got = served(tmp_path, rundir_base, "getpgid", "memreadat", PY, "-c", STRADDLE)
    assert r.stdout == "....\n"
    assert got == ["memreadat: " + b"....".hex()], r.stderr


def test_write_straddling_a_hole_writes_nothing_and_says_so(sysgate_bin, rundir_base,
                                                             tmp_path):
    r, got = served(tmp_path, rundir_base, "getpgid", "memwriteat", PY, "-c", STRADDLE)
    # Part of the range is unmapped: refused before anything is written.
    assert got == [f"memwriteat: error={EFAULT}"], (r.stdout, r.stderr)
    assert r.stdout == "....\n"


# Maps a page of '.', makes it read-only (or inaccessible), then calls getpgid
# with a pointer to it; prints what the page holds afterwards.
PROTECTED = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_void_p]
base = libc.mmap(None, 4096, 3, 0x22, -1, 0)
ctypes.memset(base, ord('.'), 4096)
libc.mprotect(base, 4096, int(sys.argv[1]))
libc.syscall(121, base)
libc.mprotect(base, 4096, 1)
print(ctypes.string_at(base, 8).decode(), flush=True)
"""


@pytest.mark.parametrize("prot,name", [(1, "read-only"), (0, "no-access"), (5, "code")])
def test_write_into_a_page_the_process_cannot_write_is_refused(sysgate_bin, rundir_base,
                                                               tmp_path, prot, name):
    """/proc/PID/mem would force the write (as a debugger does); a worker may
    only write what the process itself could."""
    r, got = served(tmp_path, rundir_base, "getpgid", "memwriteat", PY, "-c", PROTECTED,
                    str(prot))
    assert got == [f"memwriteat: error={EFAULT}"], (r.stdout, r.stderr)
    assert r.stdout == "........\n"


def test_write_into_a_writable_page_lands(sysgate_bin, rundir_base, tmp_path):
    r, got = served(tmp_path, rundir_base, "getpgid", "memwriteat", PY, "-c", PROTECTED, "3")
    assert got == ["memwriteat: error=0"], (r.stdout, r.stderr)
    assert r.stdout == "sysgate!\n"


def test_write_at_an_address_past_the_user_space_is_efault(sysgate_bin, rundir_base, tmp_path):
    code = ("import ctypes\n"
            "libc = ctypes.CDLL(None)\n"
            "libc.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong]\n"
            "libc.syscall(121, 0xffffffffffff0000)\n")
    r, got = served(tmp_path, rundir_base, "getpgid", "memwriteat", PY, "-c", code)
    assert got == [f"memwriteat: error={EFAULT}"], (r.stdout, r.stderr)
