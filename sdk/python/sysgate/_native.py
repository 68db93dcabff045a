"""The ctypes binding of libsysgate (``sysgate.h``).

This is the only module that talks to C: the protocol, the threads and the
memory proxy all live in the C SDK, Python only calls it. The library is
loaded on first use (importing :mod:`sysgate` never needs it), from, in
order:

1. ``$SYSGATE_LIB``, the path of ``libsysgate.so`` (no fallback if it is set
   but cannot be loaded: an explicit choice is never silently replaced);
2. ``sysgate/_lib/libsysgate.so*`` next to this package (what
   :func:`sysgate.run` bundles for its worker);
3. ``ctypes.util.find_library("sysgate")`` (an installed libsysgate).

Rules kept here for the rest of the package: every function has its
argtypes and restype; ``HANDLER_FN`` and ``INJECTED_FN`` callback objects
must stay referenced for as long as C may call them (the caller keeps
them); buffers handed to C are Python objects the caller holds until the
call returns, and C copies what it keeps (``sg_inject_bytes``,
``sg_inject_tracked``, ``sg_ctx_write``, ``sg_worker_emit``); the library is
loaded with ``use_errno`` (``sg_defer`` reports through errno).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
from ctypes import (CFUNCTYPE, c_char_p, c_int, c_int64, c_long, c_size_t,
                    c_ssize_t, c_uint, c_uint32, c_uint64, c_void_p)
from typing import Callable, Dict, List, Optional, Tuple

from ._errors import SysgateError

ENV_LIB = "SYSGATE_LIB"

#: int (*sg_handler_fn)(const sg_ctx *ctx, sg_action *out, void *ud)
HANDLER_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)
#: void (*sg_injected_fn)(pid_t pid, int fd, uint64_t cookie, void *ud)
INJECTED_FN = CFUNCTYPE(None, c_int, c_int, c_uint64, c_void_p)

SG_INJECT_WRITABLE = 1
SG_INJECT_NO_CLOEXEC = 2
SG_INJECT_TRACK = 4

_pid_t = c_int

# name: (restype, argtypes), for every function of sysgate.h.
_SIGNATURES: Dict[str, Tuple[object, List[object]]] = {
    "sg_worker_new": (c_void_p, [c_char_p]),
    "sg_worker_on": (c_int, [c_void_p, c_char_p, HANDLER_FN, c_void_p, c_int]),
    "sg_worker_on_nr": (c_int,
                        [c_void_p, c_long, HANDLER_FN, c_void_p, c_int]),
    "sg_worker_run": (c_int, [c_void_p]),
    "sg_worker_emit": (c_int, [c_void_p, c_char_p, c_size_t]),
    "sg_worker_free": (None, [c_void_p]),
    "sg_ctx_id": (c_uint64, [c_void_p]),
    "sg_ctx_pid": (_pid_t, [c_void_p]),
    "sg_ctx_syscall": (c_long, [c_void_p]),
    "sg_ctx_arch": (c_uint32, [c_void_p]),
    "sg_ctx_flags": (c_uint32, [c_void_p]),
    "sg_ctx_ip": (c_uint64, [c_void_p]),
    "sg_ctx_arg": (c_uint64, [c_void_p, c_uint]),
    "sg_ctx_path": (c_char_p, [c_void_p, c_uint]),
    "sg_ctx_info": (c_int, [c_void_p, c_void_p]),
    "sg_ctx_read": (c_ssize_t, [c_void_p, c_uint64, c_void_p, c_size_t]),
    "sg_ctx_read_cstr": (c_ssize_t, [c_void_p, c_uint64, c_void_p, c_size_t]),
    "sg_ctx_write": (c_ssize_t, [c_void_p, c_uint64, c_char_p, c_size_t]),
    "sg_continue": (None, [c_void_p]),
    "sg_errno": (None, [c_void_p, c_int]),
    "sg_return": (None, [c_void_p, c_int64]),
    "sg_kill": (None, [c_void_p, c_int]),
    "sg_inject_bytes": (c_int, [c_void_p, c_char_p, c_size_t, c_uint]),
    "sg_inject_tracked": (c_int,
                          [c_void_p, c_char_p, c_size_t, c_uint, c_uint64]),
    "sg_worker_on_injected": (c_int, [c_void_p, INJECTED_FN, c_void_p]),
    "sg_syscall_nr": (c_long, [c_char_p]),
    "sg_syscall_name": (c_char_p, [c_long]),
    "sg_defer": (c_void_p, [c_void_p]),
    "sg_deferred_ctx": (c_void_p, [c_void_p]),
    "sg_deferred_action": (c_void_p, [c_void_p]),
    "sg_complete": (c_int, [c_void_p]),
    "sg_deferred_cancel": (c_int, [c_void_p]),
}

# Newer than the first libsysgate: bound when present, an error when used.
_OPTIONAL = frozenset({"sg_worker_emit", "sg_ctx_flags", "sg_defer",
                       "sg_deferred_ctx", "sg_deferred_action", "sg_complete",
                       "sg_deferred_cancel", "sg_inject_tracked",
                       "sg_worker_on_injected", "sg_ctx_info"})


class CtxInfo(ctypes.Structure):
    """struct sg_ctx_info (sysgate.h)."""
    _fields_ = [("id", c_uint64), ("ip", c_uint64), ("args", c_uint64 * 6),
                ("syscall", ctypes.c_int64), ("pid", ctypes.c_int32),
                ("arch", c_uint32), ("flags", c_uint32),
                ("reserved", c_uint32)]


class Native:
    """libsysgate, loaded, with every function of sysgate.h bound.

    Functions are attributes named as in C (``native.sg_ctx_pid(ptr)``);
    optional ones missing from an older library are ``None`` until
    :meth:`require` is asked for them.
    """

    def __init__(self, cdll: ctypes.CDLL, path: str, origin: str) -> None:
        self.path = path
        self.origin = origin
        self._cdll = cdll
        missing = []
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                if name not in _OPTIONAL:
                    missing.append(name)
                setattr(self, name, None)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        if missing:
            raise SysgateError(
                f"{path} ({origin}) is not a usable libsysgate: it lacks "
                f"{', '.join(missing)}; set {ENV_LIB} to the path of "
                "build/libsysgate.so")

    def has(self, name: str) -> bool:
        """Whether the library has the function ``name``."""
        return getattr(self, name, None) is not None

    def require(self, name: str) -> Callable:
        """The function ``name``, or SysgateError if this library lacks it."""
        fn = getattr(self, name, None)
        if fn is None:
            raise SysgateError(
                f"{name} is not in {self.path} ({self.origin}): this "
                "libsysgate is older than the Python SDK; rebuild it or set "
                f"{ENV_LIB} to a newer build/libsysgate.so")
        return fn

    def real_path(self) -> str:
        """The file the library was loaded from (resolved)."""
        if os.path.isabs(self.path):
            return os.path.realpath(self.path)
        # Found by soname: the dynamic loader knows where it is.
        try:
            with open("/proc/self/maps", encoding="utf-8",
                      errors="replace") as maps:
                for line in maps:
                    fields = line.split(None, 5)
                    if len(fields) == 6:
                        mapped = fields[5].strip()
                        if os.path.basename(mapped).startswith(
                                "libsysgate.so"):
                            return os.path.realpath(mapped)
        except OSError:
            pass
        raise SysgateError(
            f"cannot tell where {self.path} was loaded from; set {ENV_LIB} "
            "to the path of libsysgate.so")


_lock = threading.Lock()
_native: Optional[Native] = None


def _bundled() -> List[str]:
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib")
    # libsysgate.so before libsysgate.so.0 before libsysgate.so.0.1.0
    return sorted(glob.glob(os.path.join(here, "libsysgate.so*")), key=len)


def _open() -> Native:
    explicit = os.environ.get(ENV_LIB)
    if explicit:
        try:
            return Native(ctypes.CDLL(explicit, use_errno=True), explicit,
                          ENV_LIB)
        except OSError as e:
            raise SysgateError(
                f"cannot load the native library {ENV_LIB}={explicit}: {e}"
            ) from None
    errors = []
    for path in _bundled():
        try:
            return Native(ctypes.CDLL(path, use_errno=True), path,
                          "bundled")
        except OSError as e:
            errors.append(f"{path}: {e}")
    found = ctypes.util.find_library("sysgate")
    if found:
        try:
            return Native(ctypes.CDLL(found, use_errno=True), found,
                          "find_library")
        except OSError as e:
            errors.append(f"{found}: {e}")
    why = f" ({'; '.join(errors)})" if errors else ""
    raise SysgateError(
        f"cannot find the native library libsysgate.so{why}: set {ENV_LIB} to "
        "its path (for example build/libsysgate.so), or install libsysgate "
        "(cmake --install build)")


def load() -> Native:
    """The native library, loaded on the first call (SysgateError if it
    cannot be found or is unusable)."""
    global _native
    native = _native
    if native is not None:
        return native
    with _lock:
        if _native is None:
            _native = _open()
        return _native


_names: Dict[int, Optional[str]] = {}


def syscall_name(nr: int) -> Optional[str]:
    """The name of native syscall ``nr``, or None if it is unknown."""
    try:
        return _names[nr]
    except KeyError:
        pass
    name = None
    if 0 <= nr < 1 << 31:
        raw = load().sg_syscall_name(nr)
        name = raw.decode("ascii") if raw is not None else None
    _names[nr] = name
    return name


def syscall_nr(name: str) -> int:
    """The number of native syscall ``name``, or a negative errno."""
    return int(load().sg_syscall_nr(name.encode("utf-8", "surrogateescape")))
