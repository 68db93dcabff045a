"""Ready-made handlers (docs/sdk-python.md#presets).

Register them for path syscalls, for example::

    from sysgate import run
    from sysgate.presets import COMMON_PATH_SYSCALLS, PathDenyHandler

    deny = PathDenyHandler(deny=["/etc/shadow", "/root/*"])
    run(["cat", "/etc/shadow"], [(s, deny) for s in COMMON_PATH_SYSCALLS])

Paths are matched as the program passed them (not resolved: relative
paths, ``..`` and symlinks are not normalized) with
:func:`fnmatch.fnmatchcase`, whose ``*`` also matches ``/``. That, and the
fact that a program can change its memory between the check and the
kernel's use, makes these handlers policy conveniences and audit aids, not
a confinement boundary: confine with ``read``/``write`` (Landlock) and
``deny_syscalls``.
"""

from __future__ import annotations

import errno as _errno
import fnmatch
import logging
import platform
import sys
from typing import Callable, Iterable, Optional, Tuple

from . import _native
from ._errors import SysgateError
from .action import ExceptionPolicy, NotifAction
from .ctx import PATH_ARG, HandlerCtx
from .handler import Handler

# The single-path syscalls of docs/handlers.md#pre-read-paths, in a stable order.
_PATH_SYSCALLS = (
    "openat", "open", "creat", "unlinkat", "mkdirat", "newfstatat", "statx",
    "faccessat", "faccessat2", "readlinkat", "execve", "execveat",
    "fchmodat", "fchownat", "utimensat", "unlink", "mkdir", "rmdir", "stat",
    "lstat", "access", "readlink", "chdir", "truncate", "chmod", "chown",
)
assert set(_PATH_SYSCALLS) == set(PATH_ARG)

# Missing on the architectures with the generic syscall table (arm64,
# riscv64, loongarch64): used only when the native library is unavailable.
_LEGACY = frozenset(("open", "creat", "unlink", "mkdir", "rmdir", "stat",
                     "lstat", "access", "readlink", "chmod", "chown"))


def _common_path_syscalls() -> Tuple[str, ...]:
    try:
        return tuple(s for s in _PATH_SYSCALLS if _native.syscall_nr(s) >= 0)
    except SysgateError:
        generic = platform.machine() in ("aarch64", "arm64", "riscv64",
                                         "loongarch64")
        return tuple(s for s in _PATH_SYSCALLS
                     if not (generic and s in _LEGACY))


_common: Optional[Tuple[str, ...]] = None


def __getattr__(name: str) -> object:
    # COMMON_PATH_SYSCALLS: the single-path syscalls of docs/handlers.md#pre-read-paths (their path
    # pre-read by the supervisor) that exist on this architecture, computed
    # on first use (it asks the native library, when there is one).
    global _common
    if name == "COMMON_PATH_SYSCALLS":
        if _common is None:
            _common = _common_path_syscalls()
        return _common
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _patterns(what: str, patterns: Iterable[str]) -> Tuple[str, ...]:
    if isinstance(patterns, (str, bytes)):
        raise TypeError(f"{what} must be a list of patterns, not a single "
                        f"{type(patterns).__name__} (write [{patterns!r}])")
    try:
        items = tuple(patterns)
    except TypeError:
        raise TypeError(f"{what} must be a list of patterns, not "
                        f"{type(patterns).__name__}") from None
    for p in items:
        if not isinstance(p, str):
            raise TypeError(f"{what}: pattern {p!r} is not a str")
    return items


def _errno_value(e: int) -> int:
    NotifAction.errno(e)  # the same checks: int, 1..4095
    return int(e)


def _path(ctx: HandlerCtx) -> Optional[str]:
    """The syscall's path, or None (unreadable, or not a single-path
    syscall)."""
    try:
        return ctx.read_path()
    except ValueError:
        return None


class AuditPathsHandler(Handler):
    """Calls ``callback(ctx, path)`` for every call, with the path (None if
    it cannot be read or the syscall has no single path) and lets the
    syscall run. Fail-open: if the callback raises, the syscall runs too
    (``on_exception = CONTINUE``). Its return value is ignored.

    With :func:`sysgate.run`, the callback runs in the worker process: let
    it call ``handler.emit(...)`` to send what it saw back, for example
    ``AuditPathsHandler(lambda ctx, path: audit.emit({"path": path}))``.
    """

    on_exception = ExceptionPolicy.CONTINUE

    def __init__(self, callback: Callable[[HandlerCtx, Optional[str]], object]
                 ) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not "
                            f"{type(callback).__name__}")
        self.callback = callback

    def handle(self, ctx: HandlerCtx) -> NotifAction:
        self.callback(ctx, _path(ctx))
        return NotifAction.continue_()


class PathDenyHandler(Handler):
    """Fails the syscall with ``errno`` (default EPERM) when its path
    matches one of the ``deny`` patterns (fnmatch); otherwise, and when
    the path cannot be read (None), lets it run. On failure the syscall
    gets EPERM (``on_exception = DENY_EPERM``)."""

    on_exception = ExceptionPolicy.DENY_EPERM

    def __init__(self, deny: Iterable[str], errno: int = _errno.EPERM
                 ) -> None:
        self.deny = _patterns("deny", deny)
        self.errno = _errno_value(errno)
        self._action = NotifAction.errno(self.errno)

    def handle(self, ctx: HandlerCtx) -> NotifAction:
        path = _path(ctx)
        if path is not None and any(fnmatch.fnmatchcase(path, p)
                                    for p in self.deny):
            return self._action
        return NotifAction.continue_()


class PathAllowHandler(Handler):
    """Lets the syscall run only when its path matches one of the ``allow``
    patterns (fnmatch); fails it with ``errno`` (default EACCES) otherwise,
    including when the path cannot be read (None). Fail-closed: if the
    handler fails the syscall gets EPERM (``on_exception = DENY_EPERM``;
    the sandbox keeps running, the call is refused)."""

    on_exception = ExceptionPolicy.DENY_EPERM

    def __init__(self, allow: Iterable[str], errno: int = _errno.EACCES
                 ) -> None:
        self.allow = _patterns("allow", allow)
        self.errno = _errno_value(errno)
        self._action = NotifAction.errno(self.errno)

    def handle(self, ctx: HandlerCtx) -> NotifAction:
        path = _path(ctx)
        if path is not None and any(fnmatch.fnmatchcase(path, p)
                                    for p in self.allow):
            return NotifAction.continue_()
        return self._action


class LogSyscallsHandler(Handler):
    """Logs one line per call (syscall name, pid, arguments, path if any)
    and lets it run; fail-open (``on_exception = CONTINUE``).

    Lines go to ``logger`` (a :class:`logging.Logger`, at INFO) when it
    has handlers in the worker process, else to stderr, which sysgate
    relays to its own stderr (``RunResult.stderr`` with
    :func:`sysgate.run`, where the worker gets the logger by name,
    unconfigured, unless the handler configures it).
    """

    on_exception = ExceptionPolicy.CONTINUE

    def __init__(self, logger: Optional[logging.Logger] = None) -> None:
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger, not "
                            f"{type(logger).__name__}")
        self.logger = logger

    def handle(self, ctx: HandlerCtx) -> NotifAction:
        name = ctx.syscall_name or str(ctx.syscall_nr)
        args = ", ".join(f"{a:#x}" for a in ctx.args)
        line = f"sysgate: {name} pid={ctx.pid} args=({args})"
        if name in PATH_ARG:
            line += f" path={_path(ctx)!r}"
        logger = self.logger
        if logger is not None and logger.hasHandlers():
            logger.info("%s", line)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        return NotifAction.continue_()


# COMMON_PATH_SYSCALLS comes from __getattr__ (computed on first use).
__all__ = ["COMMON_PATH_SYSCALLS", "AuditPathsHandler",  # noqa: F822
           "PathDenyHandler", "PathAllowHandler", "LogSyscallsHandler"]
