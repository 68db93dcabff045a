"""The notification context a handler receives (docs/handlers.md#notification-context)."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Dict, Mapping, Optional, Tuple, Union

from . import _native

#: The path argument of the single-path syscalls whose path the supervisor
#: pre-reads (docs/handlers.md#pre-read-paths), by syscall name.
PATH_ARG: Mapping[str, int] = {
    **dict.fromkeys(("openat", "unlinkat", "mkdirat", "newfstatat", "statx",
                     "faccessat", "faccessat2", "readlinkat", "execveat",
                     "fchmodat", "fchownat", "utimensat"), 1),
    **dict.fromkeys(("open", "creat", "unlink", "mkdir", "rmdir", "stat",
                     "lstat", "access", "readlink", "execve", "chdir",
                     "truncate", "chmod", "chown"), 0),
}

#: Syscalls with two paths: ``read_path`` needs an explicit ``arg=``.
MULTI_PATH_SYSCALLS = frozenset(("renameat", "renameat2", "linkat",
                                 "symlinkat", "rename", "link", "symlink"))

_U64 = (1 << 64) - 1
_info_local = threading.local()  # a struct sg_ctx_info per handler thread
_NO_FLAGS = object()


def _addr(addr: object) -> int:
    if isinstance(addr, bool) or not isinstance(addr, int):
        raise TypeError(f"address must be an int, not {type(addr).__name__}")
    if not 0 <= addr <= _U64:
        raise ValueError(f"address {addr:#x} is not a 64-bit unsigned value")
    return addr


def _length(what: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{what} must not be negative, not {n}")
    return n


class HandlerCtx:
    """One trapped syscall, as a handler sees it.

    Attributes (plain values, read once when the handler is called):
    ``id`` (the kernel's notification id), ``pid`` (of the trapped process,
    in the supervisor's pid namespace), ``flags``, ``syscall_nr``, ``arch``
    (``AUDIT_ARCH_*``), ``instruction_pointer``, ``args`` (a tuple of the 6
    raw argument values, unsigned 64-bit ints).

    Memory accessors go through the supervisor (the worker never touches
    the trapped process): each is one round trip that blocks the calling
    thread only (in an ``async def handle``, the worker's asyncio loop),
    served only for this notification while its handler runs; for an
    ``async def handle``, until its coroutine finished. Failed reads return
    ``None``, failed writes ``False``; a context used after that behaves as
    failed. Strings are decoded with
    :func:`os.fsdecode` (undecodable bytes become surrogate escapes;
    :func:`os.fsencode` gives the original bytes back).

    A context may be used from other threads (or coroutines) while its
    handler runs; its memory calls are then made one at a time.
    """

    __slots__ = ("id", "pid", "syscall_nr", "arch", "instruction_pointer",
                 "args", "_flags", "_native", "_ptr", "_paths", "_lock",
                 "_live")

    def __init__(self, *, id: int = 0, pid: int = 0, flags: int = 0,
                 syscall_nr: int = -1, arch: int = 0,
                 instruction_pointer: int = 0,
                 args: Tuple[int, ...] = (0, 0, 0, 0, 0, 0),
                 paths: Optional[Mapping[int, str]] = None) -> None:
        """A detached context holding the given values, for unit tests of
        handlers: ``read_path`` answers from ``paths`` ({arg: path}), the
        other memory accessors fail. Workers get theirs from the SDK."""
        args = tuple(int(a) for a in args)
        if len(args) != 6:
            raise ValueError(f"args must hold 6 values, not {len(args)}")
        self.id = id
        self.pid = pid
        self._flags = flags
        self.syscall_nr = syscall_nr
        self.arch = arch
        self.instruction_pointer = instruction_pointer
        self.args = args
        self._native: Optional[_native.Native] = None
        self._ptr: Optional[int] = None
        self._paths: Dict[int, bytes] = {
            int(k): os.fsencode(v) for k, v in (paths or {}).items()}
        self._lock = threading.Lock()
        self._live = True

    @classmethod
    def _from_native(cls, native: "_native.Native", ptr: int) -> "HandlerCtx":
        """The context of the C handler call whose ``sg_ctx *`` is ptr."""
        self = cls.__new__(cls)
        info_fn = native.sg_ctx_info
        if info_fn is not None:
            # One call instead of eleven: each ctypes call costs about a
            # microsecond, a good part of a fast worker's hop.
            info = getattr(_info_local, "info", None)
            if info is None:
                info = _info_local.info = _native.CtxInfo()
            info_fn(ptr, ctypes.addressof(info))
            self.id, self.pid, self._flags = info.id, info.pid, info.flags
            self.syscall_nr, self.arch = info.syscall, info.arch
            self.instruction_pointer, self.args = info.ip, tuple(info.args)
        else:  # an older libsysgate: a call per field
            self.id = native.sg_ctx_id(ptr)
            self.pid = native.sg_ctx_pid(ptr)
            flags_fn = native.sg_ctx_flags
            self._flags = flags_fn(ptr) if flags_fn is not None else _NO_FLAGS
            self.syscall_nr = native.sg_ctx_syscall(ptr)
            self.arch = native.sg_ctx_arch(ptr)
            self.instruction_pointer = native.sg_ctx_ip(ptr)
            self.args = tuple(native.sg_ctx_arg(ptr, i) for i in range(6))
        self._native = native
        self._ptr = ptr
        self._paths = None
        self._lock = threading.Lock()
        self._live = True
        return self

    def _rebind(self, ptr: int) -> None:
        """From now on, accessors use the C context ptr (a deferred
        answer's, live until it is completed), once a memory call in
        progress on another thread returned."""
        with self._lock:
            self._ptr = ptr

    def _close(self) -> None:
        """The handler returned (an async one: its coroutine finished):
        waits for a memory call in progress on another thread, then turns
        every accessor into a failure (the C context is reused for the next
        call of its thread, or freed with its deferred answer)."""
        with self._lock:
            self._live = False

    # ---- fields -------------------------------------------------------------

    @property
    def flags(self) -> int:
        """The notification's flags (``struct seccomp_notif.flags``)."""
        if self._flags is _NO_FLAGS:
            _native.load().require("sg_ctx_flags")
        return self._flags

    @property
    def syscall_name(self) -> Optional[str]:
        """The syscall's name (``"openat"``), or None if unknown."""
        return _native.syscall_name(self.syscall_nr)

    def __repr__(self) -> str:
        name = self.syscall_name or str(self.syscall_nr)
        args = ", ".join(f"{a:#x}" for a in self.args)
        return f"<HandlerCtx {name}({args}) pid={self.pid} id={self.id:#x}>"

    # ---- memory -------------------------------------------------------------

    def read(self, addr: int, length: int) -> Optional[bytes]:
        """``length`` bytes of the trapped process at ``addr``, or None.

        May return fewer bytes if the range ends in unmapped memory.
        """
        addr = _addr(addr)
        length = _length("length", length)
        with self._lock:
            if not self._live or self._ptr is None:
                return None
            if length == 0:
                return b""
            buf = ctypes.create_string_buffer(length)
            n = self._native.sg_ctx_read(self._ptr, addr, buf, length)
            return buf.raw[:n] if n >= 0 else None

    def read_cstr(self, addr: int, max_len: int = 4096) -> Optional[str]:
        """The NUL-terminated string at ``addr``, decoded with os.fsdecode;
        None if it cannot be read or has no NUL within ``max_len`` bytes."""
        addr = _addr(addr)
        raw = self._read_cstr_bytes(addr, _length("max_len", max_len))
        return os.fsdecode(raw) if raw is not None else None

    def _read_cstr_bytes(self, addr: int, max_len: int) -> Optional[bytes]:
        if max_len == 0:
            raise ValueError("max_len must be at least 1")
        with self._lock:
            if not self._live or self._ptr is None or addr == 0:
                return None
            buf = ctypes.create_string_buffer(max_len + 1)
            n = self._native.sg_ctx_read_cstr(self._ptr, addr, buf,
                                              max_len + 1)
            return buf.raw[:n] if n >= 0 else None

    def write(self, addr: int, data: Union[bytes, bytearray, memoryview]
              ) -> bool:
        """Writes ``data`` at ``addr`` in the trapped process (all or
        nothing): True, or False if it failed."""
        addr = _addr(addr)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        data = bytes(data)  # held until the call returns; C copies it
        with self._lock:
            if not self._live or self._ptr is None:
                return False
            if not data:
                return True
            n = self._native.sg_ctx_write(self._ptr, addr, data, len(data))
            return n == len(data)

    def read_path(self, arg: Optional[int] = None, max_len: int = 4096
                  ) -> Optional[str]:
        """The path in argument ``arg``, decoded with os.fsdecode, or None.

        With ``arg=None`` the argument is the syscall's path argument
        (docs/handlers.md#pre-read-paths: argument 1 of ``openat``, 0 of ``open``, ...); for
        syscalls with two paths (``renameat``, ``linkat``, ...) or no path
        known to sysgate, ``arg`` must be given (else ValueError). The
        supervisor's pre-read copy is used when there is one (no round
        trip), else the string is read from the process; a path longer
        than ``max_len`` bytes reads as None. The path is what the program
        passed (relative paths are relative to its cwd or dirfd) as the
        supervisor saw it.
        """
        max_len = _length("max_len", max_len)
        if max_len == 0:
            raise ValueError("max_len must be at least 1")
        if arg is None:
            arg = self._path_arg()
        elif isinstance(arg, bool) or not isinstance(arg, int):
            raise TypeError(f"arg must be an int, not {type(arg).__name__}")
        elif not 0 <= arg <= 5:
            raise ValueError(f"arg must be 0..5, not {arg}")
        with self._lock:
            if not self._live:
                return None
            if self._ptr is None:
                raw = self._paths.get(arg)
            else:
                raw = self._native.sg_ctx_path(self._ptr, arg)
        if raw is None:
            raw = self._read_cstr_bytes(self.args[arg], max_len)
        if raw is None or len(raw) > max_len:
            return None
        return os.fsdecode(raw)

    def _path_arg(self) -> int:
        name = self.syscall_name
        if name in PATH_ARG:
            return PATH_ARG[name]
        if name in MULTI_PATH_SYSCALLS:
            raise ValueError(f"{name} has two path arguments: pass arg= to "
                             "read_path")
        raise ValueError(
            f"{name or f'syscall {self.syscall_nr}'} is not a path syscall "
            "sysgate knows: pass arg= to read_path")


__all__ = ["HandlerCtx", "PATH_ARG", "MULTI_PATH_SYSCALLS"]
