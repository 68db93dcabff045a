"""The Python SDK (docs/sdk-python.md) end to end: handlers written in Python, served by
real worker processes under the real supervisor, on real programs. Every test
asserts what the sandboxed program observed (its output, the errno it saw, its
exit status) and, through Handler.emit, what the handler saw.

sysgate.run() is driven the way a user drives it: from a script run by
/usr/bin/python3 (`drive`), with its handlers defined in that script's
__main__, so every run is a subprocess bounded by a timeout. Worker scripts
started with `--worker 'python3 x.py'` are staged with the package and the
library in `pubdir`, where the unprivileged worker user can read them."""
import json
import os
import re
import shutil
import subprocess
import textwrap

import pytest

from conftest import (CONCURRENT_CALLS, GETPPID, NR, OPEN_ERRNOS, PY, ROOT, SYSCALL_ERRNOS,
                      TIMEOUT, last_json, run, sdk_env, stage_sdk, write_script)

HEADER = os.path.join(ROOT, "sdk", "c", "include", "sysgate.h")
EXAMPLES = os.path.join(ROOT, "examples", "python")

EPERM, EIO, EACCES = 1, 5, 13


# --- programs the sandbox runs (conftest has SYSCALL_ERRNOS, CONCURRENT_CALLS) ---



# --- driving sysgate.run from a script ----------------------------------------

DRIVER_HEAD = """\
import asyncio, ctypes, errno, json, os, signal, sys, time
from sysgate import Handler, HandlerCtx, NotifAction, ExceptionPolicy, serve, run
from sysgate.presets import (COMMON_PATH_SYSCALLS, AuditPathsHandler, PathDenyHandler,
                             PathAllowHandler, LogSyscallsHandler)

def report(r):
    print(json.dumps({"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr,
                      "records": r.records}))

def outcome(fn):
    '''What calling fn does: ["ok", repr(value)] or [exception type, message].'''
    try:
        return ["ok", repr(fn())]
    except Exception as e:
        return [type(e).__name__, str(e)]

"""


def drive(rundir_base, tmp_path, body, timeout=TIMEOUT, **values):
    """Runs DRIVER_HEAD + `NAME = repr(value)` for values + body as a script;
    returns what its last output line holds (JSON: `report(run(...))`)."""
    consts = {"PY": PY, "GETPPID": GETPPID, "SYSCALL_ERRNOS": SYSCALL_ERRNOS,
              "OPEN_ERRNOS": OPEN_ERRNOS, **values}
    script = tmp_path / "driver.py"
    script.write_text(DRIVER_HEAD
                      + "".join(f"{k} = {v!r}\n" for k, v in consts.items())
                      + textwrap.dedent(body))
    p = subprocess.run([PY, str(script)], capture_output=True, text=True, timeout=timeout,
                       env=sdk_env(rundir_base), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    return last_json(p.stdout)


# --- actions --------------------------------------------------------------------

def test_errno_action_fails_the_open_the_program_makes(sysgate_bin, rundir_base, tmp_path):
    secret, other = tmp_path / "secret", tmp_path / "other"
    secret.write_text("s")
    other.write_text("o")
    r = drive(rundir_base, tmp_path, """
        class Deny(Handler):
            def handle(self, ctx):
                if ctx.read_path() == SECRET:
                    return NotifAction.errno(errno.EACCES)
                return NotifAction.continue_()

        report(run([PY, "-c", OPEN_ERRNOS, SECRET, OTHER], [("openat", Deny())]))
    """, SECRET=str(secret), OTHER=str(other))
    assert r["returncode"] == 0, r["stderr"]
    assert last_json(r["stdout"]) == [EACCES, 0]


def test_errno_action_seen_as_permission_error(sysgate_bin, rundir_base, tmp_path):
    r = drive(rundir_base, tmp_path, """
        class Deny(Handler):
            def handle(self, ctx):
                if ctx.read_path() == "/etc/hostname":
                    return NotifAction.errno(errno.EACCES)
                return NotifAction.continue_()

        report(run([PY, "-c", "open('/etc/hostname')"], [("openat", Deny())]))
    """)
    assert r["returncode"] == 1
    assert "PermissionError: [Errno 13] Permission denied: '/etc/hostname'" in r["stderr"]


def test_returns_action_is_what_getpid_returns(sysgate_bin, rundir_base, tmp_path):
    r = drive(rundir_base, tmp_path, """
        class Fake(Handler):
            def handle(self, ctx):
                return NotifAction.returns(4242)

        report(run([PY, "-c", "import os; print(os.getpid())"], [("getpid", Fake())]))
    """)
    assert r["returncode"] == 0, r["stderr"]
    assert r["stdout"] == "4242\n"


def test_kill_action_ends_the_program(sysgate_bin, rundir_base, tmp_path):
    prog = ("import ctypes\n"
            "print('before', flush=True)\n"
            f"ctypes.CDLL(None).syscall({GETPPID})\n"
            "print('after', flush=True)\n")
    r = drive(rundir_base, tmp_path, """
        class Kill(Handler):
            def handle(self, ctx):
                return NotifAction.kill()

        report(run([PY, "-c", PROG], [("getppid", Kill())]))
    """, PROG=prog)
    assert r["returncode"] == 128 + 9, r["stderr"]
    assert r["stdout"] == "before\n"


def test_continue_action_lets_the_call_run(sysgate_bin, rundir_base, tmp_path):
    prog = SYSCALL_ERRNOS + "import os\nprint(os.getpid())\n"
    r = drive(rundir_base, tmp_path, """
        class Seen(Handler):
            def handle(self, ctx):
                self.emit({"pid": ctx.pid, "nr": ctx.syscall_nr})
                return NotifAction.continue_()

        report(run([PY, "-c", PROG, str(GETPPID), "2"], [("getppid", Seen())]))
    """, PROG=prog)
    assert r["returncode"] == 0, r["stderr"]
    errnos, pid = r["stdout"].splitlines()
    assert json.loads(errnos) == [0, 0]
    assert r["records"] == [{"pid": int(pid), "nr": GETPPID}] * 2


# What the program gets from opening a file a handler injects: the bytes, the
# errno of writing to the fd (0: it could), whether the fd is close-on-exec.
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


@pytest.mark.parametrize("kw,write_errno,cloexec", [
    ("", EPERM, True), ("seal=False, cloexec=False", 0, False)], ids=["default", "open"])
def test_inject_bytes_gives_the_program_an_fd_with_the_bytes(sysgate_bin, rundir_base,
                                                             tmp_path, kw, write_errno,
                                                             cloexec):
    r = drive(rundir_base, tmp_path, f"""
        class Inject(Handler):
            on_exception = ExceptionPolicy.DENY_EIO

            def handle(self, ctx):
                if ctx.read_path() == "/nonexistent/injected":
                    return NotifAction.inject_bytes(b"injected bytes\\n", {kw})
                return NotifAction.continue_()

        report(run([PY, "-c", INJECTED], [("openat", Inject())]))
    """, INJECTED=INJECTED)
    assert r["returncode"] == 0, r["stderr"]
    assert last_json(r["stdout"]) == ["injected bytes\n", write_errno, cloexec]


# Opens the virtual file and another one, reads the virtual one 3 times and
# the other once; prints the virtual file's fd and what it read, as JSON.
TRACKED_READS = """
import json, os
fd = os.open("/virtual/file", os.O_RDONLY)
other = os.open("/etc/hostname", os.O_RDONLY)
got = b"".join(os.read(fd, 3) for _ in range(3))
os.read(other, 2)
print(json.dumps([fd, got.decode()]), flush=True)
"""


def test_tracked_inject_bytes_counts_reads_of_exactly_that_fd(sysgate_bin, rundir_base,
                                                              tmp_path):
    """inject_bytes(track=5): Handler.injected hears the fd the program got
    before any read of it reaches handle(), so one handler serving openat and
    read counts the reads of exactly that (pid, fd): 3, not the read of the
    other file nor the interpreter's own reads."""
    r = drive(rundir_base, tmp_path, """
        class VirtualFile(Handler):
            on_exception = ExceptionPolicy.DENY_EIO

            def __init__(self):
                self.reads = {}  # (pid, fd) -> reads seen

            def injected(self, pid, fd, cookie):
                if cookie == 5:
                    self.reads[(pid, fd)] = 0
                    self.emit({"injected": [fd, cookie]})

            def handle(self, ctx):
                if ctx.syscall_name == "read":
                    key = (ctx.pid, ctx.args[0] & 0xffffffff)
                    if key in self.reads:
                        self.reads[key] += 1
                        self.emit({"tracked_read": self.reads[key]})
                elif ctx.read_path() == "/virtual/file":
                    return NotifAction.inject_bytes(b"virtual\\n", track=5)
                return NotifAction.continue_()

        vf = VirtualFile()
        report(run([PY, "-c", TRACKED_READS], [("openat", vf), ("read", vf)]))
    """, TRACKED_READS=TRACKED_READS)
    assert r["returncode"] == 0, r["stderr"]
    fd, content = last_json(r["stdout"])
    assert content == "virtual\n"
    assert r["records"] == [{"injected": [fd, 5]}, {"tracked_read": 1}, {"tracked_read": 2},
                            {"tracked_read": 3}], r["stderr"]


def test_exception_in_injected_is_printed_not_fatal(sysgate_bin, rundir_base, tmp_path):
    r = drive(rundir_base, tmp_path, """
        class Inject(Handler):
            on_exception = ExceptionPolicy.DENY_EIO

            def injected(self, pid, fd, cookie):
                raise RuntimeError(f"bookkeeping failed for fd {fd}")

            def handle(self, ctx):
                if ctx.read_path() == "/virtual/file":
                    return NotifAction.inject_bytes(b"still served\\n", track=0)
                return NotifAction.continue_()

        report(run([PY, "-c", "print(open('/virtual/file').read(), end='')"],
                   [("openat", Inject())]))
    """)
    assert r["returncode"] == 0, r["stderr"]
    assert r["stdout"] == "still served\n"
    assert "Inject.injected(pid=" in r["stderr"]
    assert "RuntimeError: bookkeeping failed for fd" in r["stderr"]


# --- the presets ------------------------------------------------------------------

def test_audit_paths_handler_sees_what_cat_opens(sysgate_bin, rundir_base, tmp_path):
    r = drive(rundir_base, tmp_path, """
        audit = AuditPathsHandler(lambda ctx, path: audit.emit([ctx.syscall_name, path]))
        report(run(["/usr/bin/cat", "/etc/hostname"],
                   [(s, audit) for s in COMMON_PATH_SYSCALLS]))
    """)
    assert r["returncode"] == 0, r["stderr"]
    with open("/etc/hostname") as f:
        assert r["stdout"] == f.read()
    assert ["openat", "/etc/hostname"] in r["records"]
    assert ["execve", "/usr/bin/cat"] in r["records"]


def test_path_deny_handler_fails_matching_opens_with_eperm(sysgate_bin, rundir_base,
                                                           tmp_path):
    r = drive(rundir_base, tmp_path, """
        deny = PathDenyHandler(deny=["/etc/host*"])
        report(run(["/usr/bin/cat", "/etc/hostname", "/etc/passwd"],
                   [(s, deny) for s in COMMON_PATH_SYSCALLS]))
    """)
    assert r["returncode"] == 1
    assert "cat: /etc/hostname: Operation not permitted" in r["stderr"]
    assert "root:" in r["stdout"]  # /etc/passwd does not match: it was read


def test_path_allow_handler_denies_what_it_does_not_list(sysgate_bin, rundir_base, tmp_path):
    allowed, denied = tmp_path / "allowed.txt", tmp_path / "denied.txt"
    allowed.write_text("a")
    denied.write_text("d")
    # The interpreter itself must start: its own files are allowed too.
    r = drive(rundir_base, tmp_path, """
        allow = PathAllowHandler(allow=["/usr/*", "/lib/*", "/lib64/*", "/etc/*", "/proc/*",
                                        "/dev/*", "/sys/*", ALLOWED])
        report(run([PY, "-c", OPEN_ERRNOS, ALLOWED, DENIED], [("openat", allow)]))
    """, ALLOWED=str(allowed), DENIED=str(denied))
    assert r["returncode"] == 0, r["stderr"]
    assert last_json(r["stdout"]) == [0, EACCES]


def test_log_syscalls_handler_logs_one_line_per_syscall(sysgate_bin, rundir_base, tmp_path):
    r = drive(rundir_base, tmp_path, """
        report(run([PY, "-c", SYSCALL_ERRNOS, str(GETPPID), "3"],
                   [("getppid", LogSyscallsHandler())]))
    """)
    assert r["returncode"] == 0, r["stderr"]
    assert last_json(r["stdout"]) == [0, 0, 0]
    lines = [l for l in r["stderr"].splitlines() if "getppid pid=" in l]
    assert len(lines) == 3, r["stderr"]


# --- read_path ----------------------------------------------------------------------

def test_read_path_on_openat_and_execve(sysgate_bin, rundir_base, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("contents\n")
    r = drive(rundir_base, tmp_path, """
        class Paths(Handler):
            on_exception = ExceptionPolicy.CONTINUE

            def handle(self, ctx):
                self.emit([ctx.syscall_name, ctx.read_path()])
                return NotifAction.continue_()

        p = Paths()
        report(run(["/usr/bin/cat", TARGET], [("openat", p), ("execve", p)]))
    """, TARGET=str(target))
    assert r["returncode"] == 0, r["stderr"]
    assert r["stdout"] == "contents\n"
    assert ["openat", str(target)] in r["records"]
    assert ["execve", "/usr/bin/cat"] in r["records"]


def test_read_path_wants_arg_for_two_paths_and_for_no_known_path(sysgate_bin, rundir_base,
                                                                 tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_text("x")
    # renameat2 itself (glibc's renameat2() calls renameat when flags are 0).
    prog = ("import ctypes, sys\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "r = libc.syscall(int(sys.argv[1]), -100, sys.argv[2].encode(), -100,\n"
            "                 sys.argv[3].encode(), 0)\n"
            "print(r, ctypes.get_errno() if r else 0)\n"
            "import os; os.getpid()\n")
    r = drive(rundir_base, tmp_path, """
        class Paths(Handler):
            on_exception = ExceptionPolicy.CONTINUE

            def handle(self, ctx):
                self.emit({"nr": ctx.syscall_nr,
                           "inferred": outcome(lambda: ctx.read_path()),
                           "arg1": outcome(lambda: ctx.read_path(arg=1)),
                           "arg3": outcome(lambda: ctx.read_path(arg=3))})
                return NotifAction.continue_()

        p = Paths()
        report(run([PY, "-c", PROG, str(NR["renameat2"]), SRC, DST],
                   [("renameat2", p), ("getpid", p)]))
    """, PROG=prog, SRC=str(src), DST=str(dst), NR=NR)
    assert r["returncode"] == 0, r["stderr"]
    assert r["stdout"].splitlines()[0] == "0 0"
    assert dst.read_text() == "x"
    rename = [x for x in r["records"] if x["nr"] == NR["renameat2"]]
    getpid = [x for x in r["records"] if x["nr"] == NR["getpid"]]
    assert len(rename) == 1, r["records"]
    assert rename[0]["inferred"][0] == "ValueError"
    assert rename[0]["arg1"] == ["ok", repr(str(src))]
    assert rename[0]["arg3"] == ["ok", repr(str(dst))]
    assert getpid and all(x["inferred"][0] == "ValueError" for x in getpid), r["records"]


# --- exceptions in handlers ----------------------------------------------------------

@pytest.mark.parametrize("define,body,cause", [
    ("def", "raise RuntimeError('handler bug')", "RuntimeError: handler bug"),
    ("def", "return 'not an action'", "returned 'not an action', not a NotifAction"),
    ("def", "return None", "returned None, not a NotifAction"),
    ("def", "time.sleep(100)", "did not answer getppid within --handler-timeout 300 ms"),
    ("async def", "raise RuntimeError('async bug')", "RuntimeError: async bug"),
    ("async def", "return 'not an action'", "returned 'not an action', not a NotifAction"),
    ("async def", "await asyncio.sleep(100)",
     "did not answer getppid within --handler-timeout 300 ms"),
    ("async def", "await asyncio.Future()",
     "did not answer getppid within --handler-timeout 300 ms"),
], ids=["raises", "wrong-type", "none", "never-returns", "async-raises", "async-wrong-type",
        "async-never-returns", "async-never-completes"])
def test_failing_handler_gets_the_registration_policy(sysgate_bin, rundir_base, tmp_path,
                                                      define, body, cause):
    r = drive(rundir_base, tmp_path, f"""
        class Bad(Handler):
            on_exception = ExceptionPolicy.DENY_EPERM

            {define} handle(self, ctx):
                {body}

        report(run([PY, "-c", SYSCALL_ERRNOS, str(GETPPID), "1"], [("getppid", Bad())],
                   handler_timeout=300, timeout=30))
    """)
    assert r["returncode"] == 0, r["stderr"]
    assert last_json(r["stdout"]) == [EPERM]
    assert cause in r["stderr"]


def test_worker_keeps_serving_after_an_exception(sysgate_bin, rundir_base, tmp_path):
    r = drive(rundir_base, tmp_path, """
        class FailsOnce(Handler):
            on_exception = ExceptionPolicy.DENY_EPERM
            calls = 0

            def handle(self, ctx):
                FailsOnce.calls += 1
                if FailsOnce.calls == 1:
                    raise RuntimeError("first call fails")
                self.emit(FailsOnce.calls)
                return NotifAction.returns(7)

        report(run([PY, "-c", SYSCALL_ERRNOS + "print(ctypes.CDLL(None).syscall(int(sys.argv[1])))",
                    str(GETPPID), "2"], [("getppid", FailsOnce())]))
    """)
    assert r["returncode"] == 0, r["stderr"]
    assert r["stdout"].splitlines() == [f"[{EPERM}, 0]", "7"]
    assert r["records"] == [2, 3]


@pytest.mark.parametrize("policy,observed", [
    ("KILL", None), ("DENY_EPERM", EPERM), ("DENY_EIO", EIO), ("CONTINUE", 0)])
def test_worker_killed_mid_run_gets_the_policy(sysgate_bin, rundir_base, tmp_path, policy,
                                              observed):
    prog = "print('before', flush=True)\n" + SYSCALL_ERRNOS
    r = drive(rundir_base, tmp_path, """
        class Dies(Handler):
            on_exception = getattr(ExceptionPolicy, POLICY)

            def handle(self, ctx):
                os.kill(os.getpid(), signal.SIGKILL)

        report(run([PY, "-c", PROG, str(GETPPID), "1"], [("getppid", Dies())], timeout=30))
    """, PROG=prog, POLICY=policy)
    if observed is None:
        assert r["returncode"] == 128 + 9, r["stderr"]
        assert r["stdout"] == "before\n"
    else:
        assert r["returncode"] == 0, r["stderr"]
        assert r["stdout"].splitlines() == ["before", f"[{observed}]"]
    assert "killed by SIGKILL" in r["stderr"]


# --- async handlers -----------------------------------------------------------------

def test_async_handlers_overlap(sysgate_bin, rundir_base, tmp_path):
    """4 calls at once, each answered 0.5 s later by an async handler: the
    answers overlap."""
    r = drive(rundir_base, tmp_path, """
        class Slow(Handler):
            on_exception = ExceptionPolicy.DENY_EIO

            async def handle(self, ctx):
                await asyncio.sleep(0.5)
                return NotifAction.continue_()

        report(run([PY, "-c", CALLS, str(GETPPID), "4"], [("getppid", Slow())]))
    """, CALLS=CONCURRENT_CALLS)
    assert r["returncode"] == 0, r["stderr"]
    errnos, seconds = last_json(r["stdout"])
    assert errnos == [0, 0, 0, 0]
    assert 0.5 <= seconds < 1.5, seconds  # one after the other would take 2 s


def test_async_answers_do_not_hold_handler_threads(sysgate_bin, rundir_base, tmp_path):
    """24 answers pending at once on the 16 handler threads of the default:
    an async handler gives its thread back while it waits (holding them
    would take 1 s)."""
    r = drive(rundir_base, tmp_path, """
        class Slow(Handler):
            on_exception = ExceptionPolicy.DENY_EIO

            async def handle(self, ctx):
                await asyncio.sleep(0.5)
                return NotifAction.returns(7)

        report(run([PY, "-c", CALLS, str(GETPPID), "24"], [("getppid", Slow())]))
    """, CALLS=CONCURRENT_CALLS)
    assert r["returncode"] == 0, r["stderr"]
    errnos, seconds = last_json(r["stdout"])
    assert errnos == [0] * 24
    assert 0.45 <= seconds < 0.9, seconds


def test_async_answers_past_max_concurrency_get_the_policy(sysgate_bin, rundir_base,
                                                           tmp_path):
    r = drive(rundir_base, tmp_path, """
        class Slow(Handler):
            on_exception = ExceptionPolicy.DENY_EPERM

            async def handle(self, ctx):
                await asyncio.sleep(1.5)
                return NotifAction.continue_()

        report(run([PY, "-c", CALLS, str(GETPPID), "5"], [("getppid", Slow())],
                   max_concurrency=3))
    """, CALLS=CONCURRENT_CALLS)
    assert r["returncode"] == 0, r["stderr"]
    errnos, _ = last_json(r["stdout"])
    assert errnos == [0, 0, 0, EPERM, EPERM]
    assert r["stderr"].count("3 async answers are pending already (max_concurrency)") == 2


def test_async_handler_reads_memory_after_awaiting(sysgate_bin, rundir_base, tmp_path):
    """The context stays live until the coroutine answers: a read of the
    program's memory after an await works, through the deferred answer."""
    secret, other = tmp_path / "secret", tmp_path / "other"
    secret.write_text("s")
    other.write_text("o")
    r = drive(rundir_base, tmp_path, """
        class Deny(Handler):
            on_exception = ExceptionPolicy.DENY_EIO

            async def handle(self, ctx):
                await asyncio.sleep(0.01)
                path = ctx.read_cstr(ctx.args[1])
                if path is None:
                    raise RuntimeError("read_cstr failed after await")
                if path == SECRET:
                    return NotifAction.errno(errno.EACCES)
                return NotifAction.continue_()

        report(run([PY, "-c", OPEN_ERRNOS, SECRET, OTHER], [("openat", Deny())]))
    """, SECRET=str(secret), OTHER=str(other))
    assert r["returncode"] == 0, r["stderr"]
    assert last_json(r["stdout"]) == [EACCES, 0]


# --- argument checks, before anything starts ------------------------------------------

@pytest.mark.parametrize("call,exc,named", [
    ('run(["touch", MARKER], [("nosuchcall", H())])', "ValueError", "'nosuchcall'"),
    ('run(["touch", MARKER], [(True, H())])', "TypeError", "bool"),
    ('run(["touch", MARKER], [("getpid", object())])', "TypeError", "not a sysgate.Handler"),
    ('run(["touch", MARKER], [("openat", PathDenyHandler(deny="/etc/*"))])', "TypeError",
     "deny must be a list"),
    ('run(["touch", MARKER], [("getpid", Errno(0))])', "ValueError", "1..4095"),
    ('run(["touch", MARKER], [("getpid", Errno(4096))])', "ValueError", "1..4095"),
], ids=["unknown-syscall", "bool-syscall", "not-a-handler", "string-for-list", "errno-0",
        "errno-4096"])
def test_bad_arguments_are_rejected_before_anything_starts(sysgate_bin, rundir_base,
                                                           tmp_path, call, exc, named):
    marker = tmp_path / "started"
    r = drive(rundir_base, tmp_path, f"""
        class H(Handler):
            def handle(self, ctx):
                return NotifAction.continue_()

        def Errno(e):
            action = NotifAction.errno(e)  # the check may come here or in run()

            class Answer(Handler):
                def handle(self, ctx):
                    return action
            return Answer()

        print(json.dumps(outcome(lambda: {call})))
    """, MARKER=str(marker))
    assert r[0] == exc, r
    assert named in r[1], r
    assert not marker.exists()


# --- ExceptionPolicy is the C enum -----------------------------------------------------

def test_exception_policy_values_are_the_c_enum(rundir_base, tmp_path):
    with open(HEADER) as f:
        c_enum = {m.group(1): int(m.group(2))
                  for m in re.finditer(r"\bSG_EXC_(\w+)\s*=\s*(\d+)", f.read())}
    assert set(c_enum) == {"KILL", "DENY_EPERM", "CONTINUE", "DENY_EIO"}
    py_enum = drive(rundir_base, tmp_path, """
        print(json.dumps({p.name: int(p.value) for p in ExceptionPolicy}))
    """)
    assert py_enum == c_enum
    assert drive(rundir_base, tmp_path, """
        print(json.dumps(Handler.on_exception == ExceptionPolicy.KILL))
    """) is True


# --- a worker script started with --worker, using serve() ---------------------------------

def test_serve_in_a_worker_script(sysgate_bin, rundir_base, pubdir):
    lib = stage_sdk(pubdir)
    worker = write_script(pubdir, "faker.py", textwrap.dedent("""
        import sys
        from sysgate import Handler, NotifAction, serve

        class Fake(Handler):
            def handle(self, ctx):
                return NotifAction.returns(int(sys.argv[1]))

        rc = serve([("getpid", Fake())])
        print("serve returned", rc, file=sys.stderr)
        sys.exit(rc)
    """))
    r = run("--worker", f"{PY} {worker} 31337", "--", PY, "-c",
            "import os; print(os.getpid())", env=sdk_env(rundir_base, lib, pubdir))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "31337\n"
    assert "serve returned 0" in r.stderr


def test_worker_read_grants_a_package_outside_the_script_directory(sysgate_bin, rundir_base,
                                                                  pubdir):
    """The package lives in pubdir/sdk, the script in pubdir/w: the worker's
    Landlock domain reads only the script's directory, unless --worker-read
    adds the package's."""
    sdk = os.path.join(pubdir, "sdk")
    os.mkdir(sdk, 0o755)
    lib = stage_sdk(sdk)
    wdir = os.path.join(pubdir, "w")
    os.mkdir(wdir, 0o755)
    worker = write_script(wdir, "faker.py", textwrap.dedent("""
        from sysgate import Handler, NotifAction, serve

        class Fake(Handler):
            def handle(self, ctx):
                return NotifAction.returns(4321)

        raise SystemExit(serve([("getpid", Fake())]))
    """))
    code = "import os; print(os.getpid())"
    r = run("--worker", f"{PY} {worker}", "--", PY, "-c", code,
            env=sdk_env(rundir_base, lib, sdk))
    assert r.returncode == 125
    assert "PermissionError" in r.stderr or "ModuleNotFoundError" in r.stderr, r.stderr
    r = run("--worker-read", sdk, "--worker", f"{PY} {worker}", "--", PY, "-c", code,
            env=sdk_env(rundir_base, lib, sdk))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "4321\n"


# --- the examples ----------------------------------------------------------------------------

def example(name):
    path = os.path.join(EXAMPLES, name)
    assert os.path.exists(path), path
    return path


def test_example_audit_paths(sysgate_bin, rundir_base, tmp_path):
    p = subprocess.run([PY, example("audit_paths.py"), "/usr/bin/cat", "/etc/hostname"],
                       capture_output=True, text=True, timeout=TIMEOUT,
                       env=sdk_env(rundir_base), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    with open("/etc/hostname") as f:
        assert p.stdout.startswith(f.read())
    assert re.search(r"^openat\s+/etc/hostname$", p.stdout, re.M), p.stdout
    assert re.search(r"^execve\s+/usr/bin/cat$", p.stdout, re.M), p.stdout


def test_example_deny_worker(sysgate_bin, rundir_base, pubdir):
    lib = stage_sdk(pubdir)
    worker = shutil.copy(example("deny_worker.py"), pubdir)
    os.chmod(worker, 0o644)
    r = run("--worker", f"{PY} {worker} /etc/host*", "--", "cat", "/etc/hostname",
            "/etc/passwd", env=sdk_env(rundir_base, lib, pubdir))
    assert r.returncode == 1
    assert "cat: /etc/hostname: Operation not permitted" in r.stderr
    assert "root:" in r.stdout


def test_example_getpid_faker(sysgate_bin, rundir_base, tmp_path):
    p = subprocess.run([PY, example("getpid_faker.py"), "777"], capture_output=True,
                       text=True, timeout=TIMEOUT, env=sdk_env(rundir_base),
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "777\n"


def test_example_allow_list(sysgate_bin, rundir_base, tmp_path):
    p = subprocess.run([PY, example("allow_list.py")], capture_output=True, text=True,
                       timeout=TIMEOUT, env=sdk_env(rundir_base), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "/etc/hostname: allowed" in p.stdout
    assert "/etc/passwd: Permission denied" in p.stdout


def test_example_async_handler(sysgate_bin, rundir_base, tmp_path):
    p = subprocess.run([PY, example("async_handler.py")], capture_output=True, text=True,
                       timeout=TIMEOUT, env=sdk_env(rundir_base), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "4 calls answered" in p.stdout
