"""Shared helpers for sysgate's integration tests.

Every test drives the real `sysgate` binary (SYSGATE_BIN) on real programs and
asserts what the sandboxed program observed. Every subprocess has a timeout.
"""
import json
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

SYSGATE = os.environ.get("SYSGATE_BIN") or shutil.which("sysgate")
PY = "/usr/bin/python3"  # Debian's interpreter, not a pyenv shim that forks
# What a dynamically linked Debian program needs to start under -r/-w rules.
SYSTEM_RO = ["-r", "/usr", "-r", "/lib", "-r", "/lib64", "-r", "/bin", "-r", "/etc"]
TIMEOUT = 60
BUILD = os.environ.get("SYSGATE_BUILD_DIR", "")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SDK = os.path.join(ROOT, "sdk", "python")
LIB = os.environ.get("SYSGATE_LIB") or os.path.join(BUILD, "libsysgate.so")

# Numbers of the syscalls the programs call directly or tell apart.
NR = {"x86_64": {"getppid": 110, "getpid": 39, "renameat2": 316},
      "aarch64": {"getppid": 173, "getpid": 172, "renameat2": 276}}[platform.machine()]
GETPPID = NR["getppid"]


# --- programs the sandbox runs ------------------------------------------------

# Opens each file named in argv; prints the errno of each open (0: read it).
OPEN_ERRNOS = """
import sys
out = []
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            f.read()
        out.append(0)
    except OSError as e:
        out.append(e.errno)
print(out, flush=True)
"""

# Calls the syscall numbered argv[1] (no arguments) argv[2] times through
# syscall(2); prints the errno of each as a JSON list (0: it succeeded).
SYSCALL_ERRNOS = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
out = []
for _ in range(int(sys.argv[2])):
    ctypes.set_errno(0)
    r = libc.syscall(int(sys.argv[1]))
    out.append(ctypes.get_errno() if r < 0 else 0)
print(out, flush=True)
"""

# Calls the syscall numbered argv[1] until it succeeds (a restarted worker
# answers), for at most argv[2] seconds; prints the first errno and the last
# (0: it succeeded).
UNTIL_OK = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
first = None
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    ctypes.set_errno(0)
    r = libc.syscall(int(sys.argv[1]))
    e = ctypes.get_errno() if r < 0 else 0
    if first is None:
        first = e
    if e == 0:
        break
print(first, e, flush=True)
"""

# Calls the syscall numbered argv[1] once in each of argv[2] threads at the
# same time; prints, as JSON, the sorted errnos (0: it succeeded) and the
# seconds it took.
CONCURRENT_CALLS = """
import ctypes, json, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
res = []
def call():
    ctypes.set_errno(0)
    r = libc.syscall(int(sys.argv[1]))
    res.append(ctypes.get_errno() if r < 0 else 0)
ts = [threading.Thread(target=call) for _ in range(int(sys.argv[2]))]
t0 = time.monotonic()
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps([sorted(res), time.monotonic() - t0]), flush=True)
"""


# --- helpers ------------------------------------------------------------------


def run(*args, timeout=TIMEOUT, **kw):
    """`sysgate run ARGS...`, output captured as text."""
    return subprocess.run([SYSGATE, "run", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def last_json(text):
    """The last line of text, as JSON (programs print their result last)."""
    return json.loads(text.strip().splitlines()[-1])


def read_audit(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def syscalls(records, name=None):
    """The audit log's syscall records (of the syscall called name, if given)."""
    return [r for r in records if r["type"] == "syscall" and (name is None or r["syscall"] == name)]


def live_pids_with(marker):
    """Pids of live processes whose command line contains marker."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmd and state != "Z":
            found.append(int(d))
    return found


@pytest.fixture(scope="session")
def sysgate_bin():
    assert SYSGATE and os.access(SYSGATE, os.X_OK), "set SYSGATE_BIN to the built sysgate"
    return SYSGATE


@pytest.fixture
def pubdir():
    """A temporary directory every user can read and enter (tests also run
    programs as nobody), removed afterwards."""
    d = tempfile.mkdtemp(prefix="sysgate-test-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_script(directory, name, text, mode=0o644):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def no_leaks():
    """Yields a unique marker to put in sandboxed command lines; fails the
    test if a process carrying it outlives sysgate."""
    marker = f"987.{os.getpid()}{os.urandom(3).hex()}"
    marker = "".join(c for c in marker if c.isdigit() or c == ".")
    yield marker
    leaked = live_pids_with(marker)
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"processes left behind: {leaked}"


def copy_for_nobody(path, directory):
    """Copy an executable where the unprivileged user can run it: CI keeps the
    checkout under a directory only root may enter."""
    dst = os.path.join(directory, os.path.basename(path))
    shutil.copy2(path, dst)
    os.chmod(dst, 0o755)
    return dst


def run_as_nobody(sg, pubdir, *args):
    """sysgate (copied where nobody can run it) run by nobody through setpriv,
    with a private TMPDIR for its runtime directory; returns the result and
    that TMPDIR."""
    import pwd
    tmp = os.path.join(pubdir, "tmp")
    os.mkdir(tmp, 0o700)
    os.chown(tmp, pwd.getpwnam("nobody").pw_uid, -1)
    env = dict(os.environ, TMPDIR=tmp)
    env.pop("XDG_RUNTIME_DIR", None)
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        sg, "run", *args], capture_output=True, text=True, timeout=TIMEOUT,
                       env=env, cwd=pubdir)
    return r, tmp


def is_root():
    return os.geteuid() == 0


def landlock_abi():
    """Landlock ABI of the running kernel (0 if none)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(VERSION)
    return max(r, 0)


@pytest.fixture
def rundir_base():
    """TMPDIR for sysgate: its private runtime directory goes below it and
    must be gone once sysgate exits."""
    d = tempfile.mkdtemp(prefix="sg-run-")
    os.chmod(d, 0o755)  # workers run as nobody under root: they must get through
    yield d
    left = os.listdir(d)
    os.rmdir(d) if not left else None
    assert not left, f"runtime directory left behind: {left}"


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def env_with(base):
    """The environment, with TMPDIR (where sysgate makes its runtime
    directory) set to base."""
    return dict(os.environ, TMPDIR=base)


def assert_workers_gone(audit):
    """Every worker process the audit log names (the first start and every
    restart) is gone; there is at least one."""
    pids = {x["worker_pid"] for x in read_audit(audit) if "worker_pid" in x}
    assert pids, "no worker_pid in the audit log"
    alive = [p for p in pids if pid_alive(p)]
    assert not alive, f"worker processes outlived sysgate: {alive}"


# --- the Python SDK, for sysgate.run() drivers and --worker scripts -------------

def asan_preload():
    """The sanitizer build's libsysgate needs the ASan runtime loaded first
    in every process that loads it: /usr/bin/python3 is not built with it."""
    try:
        out = subprocess.run(["ldd", LIB], capture_output=True, text=True,
                             timeout=TIMEOUT).stdout
    except OSError:
        return {}
    m = re.search(r"^\s*libasan\.so\S*\s+=>\s+(\S+)", out, re.M)
    if not m:
        return {}
    return {"LD_PRELOAD": m.group(1), "ASAN_OPTIONS": "detect_leaks=0"}


def sdk_env(rundir_base, lib=LIB, pythonpath=SDK):
    """The environment for a Python program that imports sysgate from
    pythonpath and loads lib; sysgate's runtime directory goes below
    rundir_base."""
    env = dict(os.environ, TMPDIR=rundir_base, PYTHONPATH=pythonpath, SYSGATE_LIB=lib,
               SYSGATE_BIN=SYSGATE, PYTHONDONTWRITEBYTECODE="1")
    env.update(asan_preload())
    return env


def stage_sdk(pubdir):
    """Copies the package and libsysgate into pubdir, where the worker user
    can read them; returns the library's path there."""
    shutil.copytree(os.path.join(SDK, "sysgate"), os.path.join(pubdir, "sysgate"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, dirnames, filenames in os.walk(pubdir):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    lib = os.path.join(pubdir, "libsysgate.so")
    shutil.copyfile(LIB, lib)
    os.chmod(lib, 0o644)
    return lib
