"""Argument checking of the Python SDK: everything that must fail before a
worker or a sandbox starts, and the pieces that need no sysgate run.

    /usr/bin/python3 -m pytest sdk/python/tests
"""
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

import sysgate
from sysgate import (ExceptionPolicy, Handler, HandlerCtx, NotifAction,
                     SysgateError)
from sysgate import _native, presets
from sysgate.handler import encode_record, registrations, thread_count

try:
    _native.load()
    HAVE_LIB = True
except SysgateError:
    HAVE_LIB = False

needs_lib = pytest.mark.skipif(not HAVE_LIB, reason="no libsysgate "
                               "(set SYSGATE_LIB or build build/)")


class Cont(Handler):
    def handle(self, ctx):
        return NotifAction.continue_()


class NoHandle(Handler):
    pass


# ---- actions ----------------------------------------------------------------


@pytest.mark.parametrize("factory, arg, exc", [
    (NotifAction.errno, 0, ValueError),
    (NotifAction.errno, 4096, ValueError),
    (NotifAction.errno, -1, ValueError),
    (NotifAction.errno, True, TypeError),
    (NotifAction.errno, "1", TypeError),
    (NotifAction.returns, 1 << 63, ValueError),
    (NotifAction.returns, -(1 << 63) - 1, ValueError),
    (NotifAction.returns, False, TypeError),
    (NotifAction.returns, 1.5, TypeError),
    (NotifAction.kill, 0, ValueError),
    (NotifAction.kill, 65, ValueError),
    (NotifAction.kill, True, TypeError),
    (NotifAction.inject_bytes, "text", TypeError),
    (NotifAction.inject_bytes, b"x" * ((1 << 20) + 1), ValueError),
])
def test_action_rejects(factory, arg, exc):
    with pytest.raises(exc):
        factory(arg)


def test_action_values():
    assert NotifAction.continue_().kind == "continue"
    assert NotifAction.errno(errno.EACCES).value == errno.EACCES
    assert NotifAction.errno(4095).value == 4095
    assert NotifAction.returns(-(1 << 63)).value == -(1 << 63)
    assert NotifAction.kill().value == signal.SIGKILL
    assert NotifAction.kill(signal.SIGTERM) == NotifAction.kill(15)
    a = NotifAction.inject_bytes(bytearray(b"abc"))
    assert (a.kind, a.data, a.seal, a.cloexec) == \
        ("inject", b"abc", True, True)
    b = NotifAction.inject_bytes(b"", seal=False, cloexec=False)
    assert (b.seal, b.cloexec, b._flags) == (False, False, 3)
    assert repr(NotifAction.errno(1)) == "NotifAction.errno(1)"
    with pytest.raises(AttributeError):
        a._kind = "errno"


def test_exception_policy_values():
    assert [(p.name, int(p)) for p in ExceptionPolicy] == [
        ("KILL", 0), ("DENY_EPERM", 1), ("CONTINUE", 2), ("DENY_EIO", 3)]
    assert Handler.on_exception is ExceptionPolicy.KILL


# ---- registrations ----------------------------------------------------------


@needs_lib
@pytest.mark.parametrize("handlers, exc, words", [
    ([("no_such_syscall", Cont())], ValueError, "no_such_syscall"),
    ([(True, Cont())], TypeError, "bool"),
    ([(-1, Cont())], ValueError, "negative"),
    ([(99999, Cont())], ValueError, "99999"),
    ([(1.0, Cont())], TypeError, "float"),
    ([("openat", object())], TypeError, "not a sysgate.Handler"),
    ([("openat", Cont)], TypeError, "Cont()"),
    ([("openat", NoHandle())], TypeError, "does not override"),
    ([("openat",)], TypeError, "pair"),
    (("openat", Cont()), TypeError, "pair"),
    ({"openat": Cont()}, TypeError, "list"),
    ("openat", TypeError, "list"),
    (None, TypeError, "list"),
])
def test_registrations_reject(handlers, exc, words):
    with pytest.raises(exc, match=None) as info:
        registrations(handlers)
    assert words in str(info.value)


@needs_lib
def test_registrations_resolve():
    h = Cont()
    regs = registrations([("openat", h), (39, h)])  # 39: getpid on x86_64
    assert regs[0].name == "openat" and regs[0].nr == _native.syscall_nr(
        "openat")
    assert regs[1].nr == 39 and regs[1].name == _native.syscall_name(39)
    assert regs[0].on_exception is ExceptionPolicy.KILL


@needs_lib
def test_registrations_policy():
    h = Cont()
    h.on_exception = 7
    with pytest.raises(ValueError, match="on_exception"):
        registrations([("openat", h)])
    h.on_exception = True
    with pytest.raises(TypeError, match="on_exception"):
        registrations([("openat", h)])
    h.on_exception = 3
    assert registrations([("openat", h)])[0].on_exception is \
        ExceptionPolicy.DENY_EIO


@pytest.mark.parametrize("value, exc", [(0, ValueError), (65, ValueError),
                                        (True, TypeError), ("4", TypeError)])
def test_max_concurrency(value, exc):
    with pytest.raises(exc):
        thread_count(value)
    assert thread_count(None) is None and thread_count(64) == 64


# ---- serve and run, before anything starts ----------------------------------


@needs_lib
def test_serve_outside_sysgate(monkeypatch):
    monkeypatch.delenv("SYSGATE_WORKER_URL", raising=False)
    with pytest.raises(SysgateError, match="SYSGATE_WORKER_URL"):
        sysgate.serve([("openat", Cont())])


@needs_lib
@pytest.mark.parametrize("cmd, handlers, options, exc", [
    ("true", [], {}, TypeError),
    ([], [], {}, TypeError),
    (["true"], [("nope", Cont())], {}, ValueError),
    (["true"], [("openat", Cont)], {}, TypeError),
    (["true"], "openat", {}, TypeError),
    (["true"], [], {"read": "/usr"}, TypeError),
    (["true"], [], {"write": b"/tmp"}, TypeError),
    (["true"], [], {"timeout": 0}, ValueError),
    (["true"], [], {"timeout": True}, TypeError),
    (["true"], [], {"max_procs": -1}, ValueError),
    (["true"], [], {"deny_syscalls": "ptrace"}, TypeError),
    (["true"], [], {"deny_syscalls": ["no_such_syscall"]}, ValueError),
    (["true"], [], {"no_network": 1}, TypeError),
    (["true"], [], {"max_concurrency": 100}, ValueError),
    (["true"], [], {"input": b"bytes"}, TypeError),
])
def test_run_rejects_before_starting(monkeypatch, cmd, handlers, options,
                                     exc):
    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.setattr(tempfile, "tempdir", tmp)
        with pytest.raises(exc):
            sysgate.run(cmd, handlers, sysgate_bin="/bin/false", **options)
        assert os.listdir(tmp) == []  # no bundle, no audit file


def test_run_without_sysgate(monkeypatch):
    monkeypatch.delenv("SYSGATE_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SysgateError, match="SYSGATE_BIN"):
        sysgate.run(["true"], [])


def test_import_without_library():
    """Importing never needs the library; first use names SYSGATE_LIB."""
    code = ("import sysgate, sysgate.presets\n"
            "from sysgate import NotifAction\n"
            "NotifAction.errno(1)\n"
            "try:\n"
            "    sysgate._native.load()\n"
            "except sysgate.SysgateError as e:\n"
            "    print('ERR', e)\n")
    env = dict(os.environ, SYSGATE_LIB="/nonexistent/libsysgate.so",
               PYTHONPATH=os.path.dirname(os.path.dirname(
                   os.path.abspath(sysgate.__file__))))
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("ERR") and "SYSGATE_LIB" in out


# ---- contexts and presets ---------------------------------------------------


def ctx_for(name, paths=None, args=(0, 0, 0, 0, 0, 0)):
    return HandlerCtx(syscall_nr=_native.syscall_nr(name), args=args,
                      paths=paths)


@needs_lib
def test_read_path_inference():
    assert ctx_for("openat", {1: "/etc/x"}).read_path() == "/etc/x"
    assert ctx_for("open", {0: "/etc/y"}).read_path() == "/etc/y"
    assert ctx_for("openat", {}).read_path() is None
    with pytest.raises(ValueError, match="two path"):
        ctx_for("renameat", {1: "a", 3: "b"}).read_path()
    assert ctx_for("renameat", {1: "a", 3: "b"}).read_path(arg=3) == "b"
    with pytest.raises(ValueError, match="pass arg="):
        ctx_for("getpid").read_path()
    with pytest.raises(ValueError):
        ctx_for("openat").read_path(arg=6)
    assert ctx_for("openat", {1: "/long"}).read_path(max_len=4) is None


@needs_lib
def test_detached_ctx_fails_safe():
    ctx = ctx_for("openat", {1: "/x"}, args=(1, 2, 3, 4, 5, 6))
    assert ctx.read(2, 10) is None
    assert ctx.read_cstr(2) is None
    assert ctx.write(2, b"x") is False
    ctx._close()
    assert ctx.read_path() is None
    assert ctx.args == (1, 2, 3, 4, 5, 6)


@needs_lib
def test_common_path_syscalls():
    names = set(presets.COMMON_PATH_SYSCALLS)
    assert {"openat", "execve", "newfstatat", "statx"} <= names
    assert not names & {"renameat", "rename", "linkat", "symlink"}
    assert all(_native.syscall_nr(n) >= 0 for n in names)


@pytest.mark.parametrize("make", [
    lambda: presets.PathDenyHandler(deny="/etc/*"),
    lambda: presets.PathAllowHandler(allow="/etc/*"),
    lambda: presets.PathDenyHandler(deny=[1]),
    lambda: presets.PathDenyHandler(deny=None),
    lambda: presets.AuditPathsHandler(callback="print"),
    lambda: presets.LogSyscallsHandler(logger="name"),
    lambda: presets.PathDenyHandler(deny=["/x"], errno=True),
])
def test_presets_type_errors(make):
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("make", [
    lambda: presets.PathDenyHandler(deny=["/x"], errno=0),
    lambda: presets.PathAllowHandler(allow=["/x"], errno=5000),
])
def test_presets_errno_range(make):
    with pytest.raises(ValueError):
        make()


@needs_lib
def test_presets_decide():
    deny = presets.PathDenyHandler(deny=["/etc/shadow*"])
    assert deny.on_exception is ExceptionPolicy.DENY_EPERM
    assert deny.handle(ctx_for("openat", {1: "/etc/shadow"})) == \
        NotifAction.errno(errno.EPERM)
    assert deny.handle(ctx_for("openat", {1: "/etc/passwd"})).kind == \
        "continue"
    assert deny.handle(ctx_for("openat", {})).kind == "continue"

    allow = presets.PathAllowHandler(allow=["/usr/*"], errno=errno.ENOENT)
    assert allow.on_exception is ExceptionPolicy.DENY_EPERM
    assert allow.handle(ctx_for("openat", {1: "/usr/lib/x"})).kind == \
        "continue"
    assert allow.handle(ctx_for("openat", {1: "/etc/x"})) == \
        NotifAction.errno(errno.ENOENT)
    assert allow.handle(ctx_for("openat", {})) == \
        NotifAction.errno(errno.ENOENT)

    seen = []
    audit = presets.AuditPathsHandler(lambda ctx, path: seen.append(path))
    assert audit.on_exception is ExceptionPolicy.CONTINUE
    audit.handle(ctx_for("openat", {1: "/a"}))
    audit.handle(ctx_for("getpid"))
    assert seen == ["/a", None]
    assert presets.LogSyscallsHandler.on_exception is ExceptionPolicy.CONTINUE


# ---- records ----------------------------------------------------------------


@pytest.mark.parametrize("obj, exc", [
    (float("nan"), ValueError), ("a\ud800", ValueError), ({"a\udcff": 1}, ValueError),
    ({1: 1, "1": 2}, ValueError), (1 << 64, ValueError),
    ("x" * 70000, ValueError), ({1, 2}, TypeError),
])
def test_encode_record_rejects(obj, exc):
    with pytest.raises(exc):
        encode_record(obj)


def test_encode_record():
    assert encode_record({"p": "é", "s": "\\u0000", "n": -1}) == \
        '{"p":"é","s":"\\\\u0000","n":-1}'.encode()


# Byte strings the SDK hands out (os.fsdecode's surrogate escapes), bytes,
# and NUL: written {"escaped": E}, read back exactly.
@pytest.mark.parametrize("value,wire", [
    (os.fsdecode(b"/tmp/\xff/../etc/hostname"), "/tmp/\\xff/../etc/hostname"),
    (b"\xfe\x00ok", "\\xfe\\x00ok"),
    ("a\0b", "a\\x00b"),
    (os.fsdecode(b"back\\slash\xc3"), "back\\\\slash\\xc3"),
])
def test_encode_record_escapes_bytes(value, wire):
    data = json.loads(encode_record({"path": value}))
    assert data == {"path": {"escaped": wire}}
    raw = value if isinstance(value, bytes) else os.fsencode(value)
    assert sysgate.decode_bytes(data["path"]) == raw
    assert sysgate.decode_record(data) == {"path": os.fsdecode(raw)}


def test_encode_record_keeps_text_and_valid_bytes():
    assert encode_record({"p": "é", "b": "é".encode()}) == \
        '{"p":"é","b":"é"}'.encode()


def test_decode_bytes_refuses_malformed_escapes():
    for bad in ({"escaped": "a\\q"}, {"escaped": "\\x4"}, {"escaped": "\\xFF"},
                {"escaped": 1}, 3):
        with pytest.raises(ValueError):
            sysgate.decode_bytes(bad)


def test_emit_outside_worker():
    with pytest.raises(SysgateError, match="no worker"):
        Cont().emit({"x": 1})


# ---- an older libsysgate ---------------------------------------------------


@needs_lib
def test_ctx_info_and_single_calls_agree(monkeypatch):
    """The one-call path (sg_ctx_info) and the per-field calls read the
    same context the same way (NULL: a stale context, all zero)."""
    native = _native.load()
    fast = HandlerCtx._from_native(native, 0)
    monkeypatch.setattr(native, "sg_ctx_info", None)
    slow = HandlerCtx._from_native(native, 0)
    for name in ("id", "pid", "syscall_nr", "arch", "instruction_pointer",
                 "args", "flags"):
        assert getattr(fast, name) == getattr(slow, name), name


def test_missing_optional_function(monkeypatch):
    native = _native.load()
    monkeypatch.setattr(native, "sg_worker_emit", None)
    with pytest.raises(SysgateError, match="sg_worker_emit"):
        native.require("sg_worker_emit")
    ctx = HandlerCtx._from_native(native, 0)  # NULL: reads as stale
    # A library older than sg_ctx_flags has no sg_ctx_info either.
    monkeypatch.setattr(native, "sg_ctx_info", None)
    monkeypatch.setattr(native, "sg_ctx_flags", None)
    old = HandlerCtx._from_native(native, 0)
    assert ctx.flags == 0 and ctx.read(1, 1) is None
    with pytest.raises(SysgateError, match="sg_ctx_flags"):
        old.flags


# ---- deferred answers (what async handlers use) ----------------------------


@needs_lib
def test_native_binds_deferred_answers():
    import ctypes
    native = _native.load()
    for name in ("sg_defer", "sg_deferred_ctx", "sg_deferred_action",
                 "sg_complete", "sg_deferred_cancel"):
        assert native.has(name), name
    ctypes.set_errno(0)
    assert native.sg_defer(None) is None
    assert ctypes.get_errno() == errno.EINVAL  # the library sets errno
    assert native.sg_complete(None) == -errno.EINVAL
    assert native.sg_deferred_cancel(None) == -errno.EINVAL
    assert native.sg_deferred_ctx(None) is None
    assert native.sg_deferred_action(None) is None


# ---- tracked injection -----------------------------------------------------


@pytest.mark.parametrize("track, exc", [
    (-1, ValueError), (1 << 64, ValueError), (True, TypeError),
    ("5", TypeError), (5.0, TypeError)])
def test_inject_track_rejects(track, exc):
    with pytest.raises(exc, match="track"):
        NotifAction.inject_bytes(b"x", track=track)


def test_inject_track_values():
    import pickle
    plain = NotifAction.inject_bytes(b"abc")
    assert plain.track is None
    for cookie in (0, 5, (1 << 64) - 1):
        a = NotifAction.inject_bytes(b"abc", seal=False, track=cookie)
        assert (a.kind, a.data, a.seal, a.cloexec, a.track) == \
            ("inject", b"abc", False, True, cookie)
        assert a._flags == _native.SG_INJECT_WRITABLE  # TRACK is C's part
        assert a != NotifAction.inject_bytes(b"abc", seal=False)
        assert a == NotifAction.inject_bytes(b"abc", seal=False, track=cookie)
        assert hash(a) == hash(pickle.loads(pickle.dumps(a)))
        assert pickle.loads(pickle.dumps(a)) == a
        assert repr(a).endswith(f"cloexec=True, track={cookie})")
    assert NotifAction.inject_bytes(b"", track=1) != \
        NotifAction.inject_bytes(b"", track=2)


class Tracker(Handler):
    def __init__(self):
        self.seen = []

    def handle(self, ctx):
        return NotifAction.continue_()

    def injected(self, pid, fd, cookie):
        self.seen.append((pid, fd, cookie))


class AsyncInjected(Cont):
    async def injected(self, pid, fd, cookie):
        pass


@needs_lib
def test_registrations_refuse_async_injected():
    with pytest.raises(TypeError, match="injected must not be async"):
        registrations([("openat", AsyncInjected())])


@needs_lib
def test_injected_reaches_each_overriding_handler_once(capsys):
    """Every distinct handler that overrides injected, in registration
    order, once each even if registered twice; one raising does not stop
    the others and is only printed."""
    from sysgate.handler import _Worker

    class Boom(Tracker):
        def injected(self, pid, fd, cookie):
            super().injected(pid, fd, cookie)
            raise RuntimeError("boom in injected")

    a, b, c = Tracker(), Boom(), Cont()
    regs = registrations([("openat", b), ("read", a), ("close", b),
                          ("getpid", c)])
    w = _Worker(_native.load(), 0, "w", regs, 1)
    assert w.injected_handlers == [b, a]
    w._injected(4242, 7, (1 << 64) - 1, None)  # what C calls
    assert a.seen == b.seen == [(4242, 7, (1 << 64) - 1)]
    err = capsys.readouterr().err
    assert err.count("Boom.injected(pid=4242, fd=7, "
                     f"cookie={(1 << 64) - 1}) raised (ignored)") == 1
    assert "RuntimeError: boom in injected" in err
    # A C callback: ctypes converts the arguments.
    w.injected_callback(1, 3, 5, None)
    assert a.seen[-1] == (1, 3, 5)
    assert _Worker(_native.load(), 0, "w", registrations(
        [("openat", c)]), 1).injected_handlers == []


@needs_lib
def test_native_binds_tracked_injection():
    native = _native.load()
    assert native.has("sg_inject_tracked")
    assert native.has("sg_worker_on_injected")
    cb = _native.INJECTED_FN(lambda pid, fd, cookie, ud: None)
    assert native.sg_worker_on_injected(None, cb, None) == -errno.EINVAL
    assert native.sg_inject_tracked(None, b"x", 1, 0, 5) == -errno.EINVAL
