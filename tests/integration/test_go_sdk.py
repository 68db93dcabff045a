"""The Go SDK (sdk/go) end to end: handlers written in Go, served by real
worker processes under the real supervisor, on real programs. Every test
asserts what the sandboxed program observed (its output, the errno or value
a syscall gave it, its exit status) and, through records the worker emits
(Worker.Emit, in the --audit log), what the handler saw.

The workers are Go programs built by CMake when `go` is found: the tests'
worker (sdk/go/internal/testworker, one handler set per mode), the examples
(examples/go) and, for the installed-SDK test, an example built here with
`go build` against `cmake --install`'s libsysgate. Under root, sysgate runs
workers as nobody: the build tree must be reachable by nobody, as for the C
examples (the Go binaries link libsysgate statically, so nothing else of
the build is read)."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import (BUILD, GETPPID, OPEN_ERRNOS, PY, ROOT, TIMEOUT, copy_for_nobody, env_with,
                      is_root, last_json, read_audit, run, run_as_nobody)

TESTWORKER = os.path.join(BUILD, "tests", "workers", "sg-go-testworker")
EXAMPLES = os.path.join(BUILD, "examples", "go")
GO = shutil.which("go") or "/usr/bin/go"
CMAKE = os.environ.get("SYSGATE_CMAKE", "cmake")
# A sanitizer build's libsysgate needs the sanitizer runtimes in the program.
CFLAGS = os.environ.get("SYSGATE_TEST_CFLAGS", "")

pytestmark = pytest.mark.skipif(not os.access(TESTWORKER, os.X_OK),
                                reason="the Go workers are not built (go not found by CMake)")

EPERM, EIO, EBADF, EACCES = 1, 5, 9, 13


def worker(*args):
    """The --worker command of the tests' Go worker in mode args."""
    return " ".join([TESTWORKER, *map(str, args)])


def records(audit):
    """The data of every record the workers emitted, in order."""
    return [x["data"] for x in read_audit(audit) if x["type"] == "record"]


def worker_pids(audit):
    return {x["worker_pid"] for x in read_audit(audit) if "worker_pid" in x}


# --- programs the sandbox runs ----------------------------------------------------------


# Calls getppid(arg) for each arg of argv[2:] (argv[1] is its number); prints
# [value or -errno, ...].
GETPPID_ARGS = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = []
for a in sys.argv[2:]:
    ctypes.set_errno(0)
    r = libc.syscall(int(sys.argv[1]), ctypes.c_long(int(a)))
    out.append(-ctypes.get_errno() if r < 0 else r)
print(out, flush=True)
"""

# getppid(1) once (the handler hangs on it), then getppid(0) until it gives
# something else than -EIO, for at most argv[2] seconds; prints both results.
HANG_THEN_OK = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(a):
    ctypes.set_errno(0)
    r = libc.syscall(int(sys.argv[1]), ctypes.c_long(a))
    return -ctypes.get_errno() if r < 0 else r
first = call(1)
end = time.monotonic() + float(sys.argv[2])
last = call(0)
while last < 0 and time.monotonic() < end:
    last = call(0)
print([first, last], flush=True)
"""

# getppid in argv[2] threads at once; prints the sorted values they got.
CONCURRENT_VALUES = """
import ctypes, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
res = []
def call():
    ctypes.set_errno(0)
    r = libc.syscall(int(sys.argv[1]))
    res.append(-ctypes.get_errno() if r < 0 else r)
ts = [threading.Thread(target=call) for _ in range(int(sys.argv[2]))]
[t.start() for t in ts]
[t.join() for t in ts]
print(sorted(res), flush=True)
"""

# What the memory handlers act on: an open of a path that does not exist, the
# working directory, a pwrite to fd -1 of known bytes.
MEMORY = """
import json, os
try:
    open("/nonexistent/memtest")
    err = 0
except OSError as e:
    err = e.errno
try:
    os.pwrite(-1, b"hello from the child", 0)
    werr = 0
except OSError as e:
    werr = e.errno
print(json.dumps([err, os.getcwd(), werr]), flush=True)
"""

# The bytes, the errno of writing to the fd (0: it could), close-on-exec.
INJECTED = """
import fcntl, json, os
fd = os.open("/nonexistent/injected", os.O_RDONLY)
data = os.read(fd, 100).decode()
try:
    os.write(fd, b"x")
    werr = 0
except OSError as e:
    werr = e.errno
print(json.dumps([data, werr, bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)]))
"""

# Opens the tracked file, reads it in 3 pieces, closes it; prints its fd and
# what it read.
TRACKED = """
import json, os
fd = os.open("/nonexistent/tracked", os.O_RDONLY)
data = b"".join(os.read(fd, 3) for _ in range(3))
os.close(fd)
print(json.dumps([fd, data.decode()]), flush=True)
"""


# --- actions ----------------------------------------------------------------------------

def test_errno_fails_the_open_of_the_denied_path_only(sysgate_bin, rundir_base, tmp_path):
    secret, other = tmp_path / "secret", tmp_path / "other"
    secret.write_text("s")
    other.write_text("o")
    r = run("--worker", worker("deny", secret), "--", PY, "-c", OPEN_ERRNOS, str(secret),
            str(other), env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == [EACCES, 0]


def test_return_is_what_getpid_gives(sysgate_bin, rundir_base):
    r = run("--worker", worker("return", 31337), "--", PY, "-c",
            "import os; print(os.getpid())", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "31337\n"


def test_path_pre_read_and_memory_read_write(sysgate_bin, rundir_base, tmp_path):
    """openat: the pre-read copy, a read of the process's memory and Path()
    agree; getcwd: the handler writes the answer into the caller's buffer;
    pwrite64: the handler reads the buffer (nothing pre-read there)."""
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", worker("memory"), "--", PY, "-c", MEMORY,
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == [2, "/fake/cwd", EBADF]  # ENOENT from the kernel
    recs = records(audit)
    opened = [x for x in recs if "pre" in x]
    assert len(opened) == 1, recs
    assert opened[0]["pre_ok"] is True and opened[0]["syscall"] == "openat"
    assert opened[0]["pre"] == opened[0]["mem"] == opened[0]["path"] == "/nonexistent/memtest"
    assert opened[0]["pid"] > 0
    assert [x for x in recs if "data" in x] == [{"data": "hello from the child",
                                                "pre_ok": False}]


@pytest.mark.parametrize("opts,write_errno,cloexec", [
    ([], EPERM, True), (["writable", "nocloexec"], 0, False)], ids=["default", "open"])
def test_inject_bytes_gives_the_program_an_fd_with_the_bytes(sysgate_bin, rundir_base, opts,
                                                             write_errno, cloexec):
    r = run("--worker", worker("inject", *opts), "--", PY, "-c", INJECTED,
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == ["injected bytes\n", write_errno, cloexec]


def test_tracked_injection_is_reported_before_the_fd_is_used(sysgate_bin, rundir_base,
                                                             tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", worker("tracked"), "--", PY, "-c", TRACKED,
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    fd, data = last_json(r.stdout)
    assert data == "tracked\n"
    recs = records(audit)
    injected = [x for x in recs if "injected" in x]
    assert len(injected) == 1 and injected[0]["injected"] == fd and injected[0]["cookie"] == 5
    # Every read of the fd was seen as a read of the injected file.
    assert {"closed": fd, "reads": 3} in recs, recs


def test_emit_refuses_what_would_end_the_run(sysgate_bin, rundir_base, tmp_path):
    """A record sysgate would take for a protocol violation (integer beyond
    64 bits, NUL, too long, not JSON) is refused in the handler with an
    errno; the worker keeps its link and the next record arrives."""
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", worker("emit-checks"), "--", PY, "-c",
            "import os; print(os.getpid())", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n"
    assert records(audit) == [{"bad": ["true true"] * 4, "ok": True}]


# --- failures -------------------------------------------------------------------------

def test_panic_gets_the_policy_is_logged_and_the_worker_keeps_serving(sysgate_bin,
                                                                      rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", worker("panic"), "--", PY, "-c", GETPPID_ARGS,
            str(GETPPID), "1", "0", "1", "0", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == [-EIO, 7, -EIO, 7]
    assert r.stderr.count("panic: boom from the test handler") == 2, r.stderr
    assert 'handler for getppid' in r.stderr and "policy deny-eio" in r.stderr
    assert "main.main" in r.stderr or "testworker" in r.stderr  # the stack is logged
    # The same worker process answered everything: a panic costs no restart.
    assert len(worker_pids(audit)) == 1
    assert "worker_restart" not in [x["type"] for x in read_audit(audit)]


def test_hang_times_out_into_the_policy_and_the_worker_is_restarted(sysgate_bin, rundir_base,
                                                                   tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--handler-timeout", "1000", "--worker", worker("hang"),
            "--", PY, "-c", HANG_THEN_OK, str(GETPPID), "20", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == [-EIO, 7]
    types = [x["type"] for x in read_audit(audit)]
    assert "worker_restart" in types and "worker_restarted" in types, types
    assert len(worker_pids(audit)) >= 2


# --- concurrency ------------------------------------------------------------------------

def test_four_handler_calls_run_at_once(sysgate_bin, rundir_base):
    """Each call waits in the handler until 4 are in flight: the program's 4
    threads only all get 4 if the worker ran 4 handlers concurrently (else
    they wait past --handler-timeout and get EIO)."""
    r = run("--worker", worker("concurrent", 4), "--", PY, "-c", CONCURRENT_VALUES,
            str(GETPPID), "4", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == [4, 4, 4, 4]


def test_deferred_answers_let_one_thread_hold_four_calls(sysgate_bin, rundir_base):
    """One handler thread defers each call; another goroutine answers once 4
    are pending: only deferral gets all 4 threads of the program 4."""
    r = run("--worker", worker("defer", 4), "--", PY, "-c", CONCURRENT_VALUES,
            str(GETPPID), "4", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == [4, 4, 4, 4]


# --- users ------------------------------------------------------------------------------

@pytest.mark.skipif(not is_root(), reason="needs root to switch users")
def test_worker_runs_as_its_own_uid_under_root(sysgate_bin, rundir_base):
    import pwd
    r = run("--worker", worker("uid"), "--", PY, "-c", "import os; print(os.getpid())",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 0x7F5E0000  # --worker-uid-base's default, the first --worker
    r = run("--worker-user", "nobody", "--worker", worker("uid"), "--", PY, "-c",
            "import os; print(os.getpid())", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == pwd.getpwnam("nobody").pw_uid


@pytest.mark.skipif(not is_root() or not shutil.which("setpriv"), reason="needs root for setpriv")
def test_go_worker_without_root(sysgate_bin, pubdir):
    """sysgate run by nobody, with a Go worker copied where nobody can run it."""
    import pwd
    sg = copy_for_nobody(sysgate_bin, pubdir)
    w = copy_for_nobody(TESTWORKER, pubdir)
    r, tmp = run_as_nobody(sg, pubdir, "--worker", f"{w} uid", "--", PY, "-c",
                           "import os; print(os.getpid(), os.getuid())")
    assert r.returncode == 0, r.stderr
    nobody = str(pwd.getpwnam("nobody").pw_uid)
    assert r.stdout.split() == [nobody, nobody]
    assert os.listdir(tmp) == []


# --- the examples -----------------------------------------------------------------------

def example(name):
    path = os.path.join(EXAMPLES, name)
    assert os.access(path, os.X_OK), path
    return path


def test_example_path_deny(sysgate_bin, rundir_base):
    r = run("--worker", f"{example('sysgate-go-path-deny')} /etc/host*", "--", "cat",
            "/etc/hostname", "/etc/debian_version", env=env_with(rundir_base))
    assert r.returncode == 1
    assert "cat: /etc/hostname: Operation not permitted" in r.stderr
    with open("/etc/debian_version") as f:
        assert r.stdout == f.read()


def test_example_getpid_faker(sysgate_bin, rundir_base):
    r = run("--worker", f"{example('sysgate-go-getpid-faker')} 1234", "--", "sh", "-c",
            "echo $$", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1234\n"


def test_example_audit_records_what_cat_opens(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", example("sysgate-go-audit"), "--", "cat",
            "/etc/hostname", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    recs = [x for x in read_audit(audit) if x["type"] == "record"]
    assert recs and all(x["worker"] == "sysgate-go-audit" for x in recs)  # sysgate's name
    data = [x["data"] for x in recs]
    assert data[0]["syscall"] == "execve" and data[0]["path"].endswith("/cat"), data
    opens = [d for d in data if d["syscall"] == "openat" and d["path"] == "/etc/hostname"]
    assert len(opens) == 1 and opens[0]["pid"] > 0


# --- building against an installed SDK -------------------------------------------------

def go_env(**extra):
    """The go tool's environment: nothing fetched, caches in the build tree."""
    env = dict(os.environ, GOCACHE=os.path.join(BUILD, "go", "cache"),
               GOPATH=os.path.join(BUILD, "go", "path"), GOPROXY="off",
               GOFLAGS="-buildvcs=false", GO111MODULE="on", CGO_ENABLED="1")
    env.update(extra)
    return env


def sh(*cmd, env=None, cwd=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.skipif(not os.access(GO, os.X_OK), reason="needs go")
def test_go_build_against_the_installed_sdk(sysgate_bin, pubdir, rundir_base):
    """`go build` of an example with only the installed libsysgate (pkg-config
    sysgate, shared library), run under the installed sysgate."""
    prefix = os.path.join(pubdir, "prefix")
    sh(CMAKE, "--install", BUILD, "--prefix", prefix)
    pcdirs = [root for root, _, files in os.walk(prefix) if "sysgate.pc" in files]
    assert len(pcdirs) == 1
    libdir = os.path.dirname(pcdirs[0])
    exe = os.path.join(pubdir, "faker")
    ldflags = f"-Wl,-rpath,{libdir} {CFLAGS}".strip()
    sh(GO, "build", "-o", exe, ".", cwd=os.path.join(ROOT, "examples", "go", "getpid-faker"),
       env=go_env(PKG_CONFIG_PATH=pcdirs[0], CGO_LDFLAGS=ldflags))
    assert "libsysgate.so" in sh("ldd", exe)
    for d in (pubdir, prefix):
        os.chmod(d, 0o755)
    r = subprocess.run([os.path.join(prefix, "bin", "sysgate"), "run", "--worker-read", libdir,
                        "--worker", f"{exe} 777", "--", "sh", "-c", "echo $$"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "777\n"
