"""Shared helpers for sysgate's integration tests.

Every test drives the real `sysgate` binary (SYSGATE_BIN) on real programs and
asserts what the sandboxed program observed. Every subprocess has a timeout.
"""
import json
import os
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


def run(*args, timeout=TIMEOUT, **kw):
    """`sysgate run ARGS...`, output captured as text."""
    return subprocess.run([SYSGATE, "run", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def read_audit(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


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
