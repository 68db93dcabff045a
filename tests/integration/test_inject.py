"""inject_bytes end to end (docs/handlers.md#actions): a worker serves a virtual file; the
trapped openat returns a new fd of a memfd holding the worker's bytes,
sealed unless the writable flag is set, close-on-exec unless the
no-cloexec flag is set; if installing it fails, the program gets an error,
never the real syscall."""
import os

import pytest

from conftest import PY, env_with, read_audit, run

INJECT = os.path.join(os.environ.get("SYSGATE_BUILD_DIR", ""), "tests", "workers", "sg-inject")

# Opens the virtual file read-write, reads it, tries to write, and prints
# what it saw and the fd's flags from /proc/self/fdinfo (octal).
PROBE = """
import os
fd = os.open("/virtual/file", os.O_RDWR)
data = os.read(fd, 100)
try:
    os.write(fd, b"!")
    wrote = "ok"
except OSError as e:
    wrote = e.errno
with open(f"/proc/self/fdinfo/{fd}") as f:
    flags = int(dict(l.split(":", 1) for l in f.read().splitlines())["flags"], 8)
print(data.decode(), wrote, bool(flags & os.O_CLOEXEC), flush=True)
"""

# Opens the virtual file and another one, reads the virtual one 3 times and
# the other once; prints the virtual file's fd and what it read.
TRACKED_READS = ("import os\n"
                 "fd = os.open('/virtual/file', os.O_RDONLY)\n"
                 "other = os.open('/etc/hostname', os.O_RDONLY)\n"
                 "got = [os.read(fd, 3) for _ in range(3)]\n"
                 "os.read(other, 2)\n"
                 "print(fd, b''.join(got).decode(), end='', flush=True)\n")


def tracking_lines(stderr):
    """The worker's lines about the tracked fd: the Injected message it got
    and each read of that fd it counted, in order."""
    return [l for l in stderr.splitlines() if l.startswith(("injected:", "tracked read"))]


def test_cat_prints_the_injected_content(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{INJECT} /virtual/file hello-from-the-worker",
            "--", "cat", "/virtual/file", "/etc/hostname", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    with open("/etc/hostname") as f:
        assert r.stdout == "hello-from-the-worker" + f.read()
    rec = [x for x in read_audit(audit) if x["type"] == "syscall"
           and x.get("paths", {}).get("arg1") == "/virtual/file"]
    assert len(rec) == 1 and rec[0]["action"] == "inject_bytes" and rec[0]["fd"] >= 3
    assert rec[0]["decided_by"] == "sg-inject"


@pytest.mark.parametrize("flags,wrote,cloexec", [
    ("", 1, True),                                 # sealed: EPERM; O_CLOEXEC
    ("--writable", "ok", True),
    ("--no-cloexec", 1, False),
    ("--writable --no-cloexec", "ok", False),
])
def test_seal_and_cloexec_flags(sysgate_bin, rundir_base, flags, wrote, cloexec):
    r = run("--worker", f"{INJECT} {flags} /virtual/file abc", "--", PY, "-c", PROBE,
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"abc {wrote} {cloexec}\n"


def test_failed_install_is_an_error_never_the_real_syscall(sysgate_bin, rundir_base):
    # No fd left in the child: ADDFD fails with EMFILE, and the program must
    # see that, not the ENOENT the real openat would give.
    code = ("import os, resource\n"
            "fds = [int(x) for x in os.listdir('/proc/self/fd')]\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (max(fds) + 1, max(fds) + 1))\n"
            "while True:\n"
            "    try: os.dup(0)\n"
            "    except OSError: break\n"
            "try:\n"
            "    os.open('/virtual/file', os.O_RDONLY); print('opened')\n"
            "except OSError as e: print(e.errno)\n")
    r = run("--worker", f"{INJECT} /virtual/file abc", "--", PY, "-c", code,
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "24\n"  # EMFILE


def test_tracked_injection_tells_the_worker_the_fd_before_its_first_use(sysgate_bin,
                                                                         rundir_base):
    """A raw-protocol worker serves /virtual/file with a tracked inject_bytes
    and counts reads on exactly the fd number the supervisor reported: the
    Injected message arrives before any read snapshot of that fd."""
    worker = os.path.join(os.path.dirname(INJECT), "sg-misbehave")
    r = run("--worker", f"{worker} --register openat --register read injecttrack", "--", PY,
            "-c", TRACKED_READS, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    fd, content = r.stdout.split(" ", 1)
    assert content == "tracked\n"
    assert tracking_lines(r.stderr) == [f"injected: fd={fd} cookie=77", "tracked read 1",
                                        "tracked read 2", "tracked read 3"]


def test_sdk_worker_hears_the_tracked_fd_before_its_first_read(sysgate_bin, rundir_base):
    """The C SDK's side of tracked injection: sg_inject_tracked on openat,
    sg_worker_on_injected gets the fd number (and the whole 64-bit cookie)
    before any read handler, so sg-inject counts the reads of exactly that
    fd: 3, not the read of the other file nor the interpreter's own. The
    worker has 4 handler threads (the default): reads may be handled on any
    of them."""
    r = run("--worker", f"{INJECT} --track /virtual/file sdk-track", "--", PY, "-c",
            TRACKED_READS, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    fd, content = r.stdout.split(" ", 1)
    assert content == "sdk-track"  # 3 reads of 3 bytes
    assert tracking_lines(r.stderr) == [f"injected: fd={fd} cookie={0xfedcba9876543210}",
                                        "tracked read 1", "tracked read 2",
                                        "tracked read 3"], r.stderr
