"""Actions a handler answers with, and exception policies (docs/handlers.md#actions)."""

from __future__ import annotations

import enum
import os
import signal
from typing import Optional, Union

from . import _native

#: Largest ``inject_bytes`` payload the protocol carries (the supervisor's
#: own limit, told to the worker when it connects, may be lower).
MAX_INJECT_BYTES = 1 << 20

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


class ExceptionPolicy(enum.IntEnum):
    """What answers a notification when its handler fails.

    Applied when the handler raises, returns something that is not a
    :class:`NotifAction` or an invalid one, or when the worker crashes,
    exits or takes longer than ``--handler-timeout``. Same values as
    ``enum sg_exception`` in C.
    """

    KILL = 0        #: kill the sandbox (the default: fail closed)
    DENY_EPERM = 1  #: fail the syscall with EPERM
    CONTINUE = 2    #: let the syscall run (explicit fail-open)
    DENY_EIO = 3    #: fail the syscall with EIO


def _int(what: str, value: object) -> int:
    # bool is an int subclass: refuse it before the int check.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return int(value)


class NotifAction:
    """A handler's answer to one trapped syscall. Build it with a factory:

    - :meth:`continue_` let the syscall run (or the next handler decide);
    - :meth:`errno` fail it with an errno;
    - :meth:`returns` skip it and make it return a value;
    - :meth:`kill` send a signal to the trapped process;
    - :meth:`inject_bytes` make it return a new fd of a memfd holding bytes.

    Actions are immutable and may be reused across calls and threads.
    """

    __slots__ = ("_kind", "_value", "_data", "_flags", "_track")

    def __init__(self, kind: str, value: int = 0, data: bytes = b"",
                 flags: int = 0, track: Optional[int] = None) -> None:
        """Internal: use the factories, which check their arguments."""
        if kind not in ("continue", "errno", "return", "kill", "inject"):
            raise ValueError(f"unknown action kind {kind!r}")
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_flags", flags)
        object.__setattr__(self, "_track", track)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("NotifAction is immutable")

    # ---- factories ----------------------------------------------------------

    @classmethod
    def continue_(cls) -> "NotifAction":
        """Let the syscall run, or the next handler in the chain decide.

        ``continue`` is never a security decision (docs/handlers.md#chain-order): the program may
        change its memory between the check and the kernel's use.
        """
        return _CONTINUE

    @classmethod
    def errno(cls, e: int) -> "NotifAction":
        """Fail the syscall with errno ``e`` (1..4095)."""
        e = _int("errno", e)
        if not 1 <= e <= 4095:
            raise ValueError(f"errno must be 1..4095, not {e}")
        return cls("errno", e)

    @classmethod
    def returns(cls, v: int) -> "NotifAction":
        """Do not run the syscall; it returns ``v`` (a signed 64-bit int)."""
        v = _int("return value", v)
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise ValueError(f"return value {v} does not fit in 64 bits")
        return cls("return", v)

    @classmethod
    def kill(cls, sig: int = signal.SIGKILL) -> "NotifAction":
        """Send signal ``sig`` (1..64, default SIGKILL) to the trapped
        process (the sandbox's processes only)."""
        sig = _int("signal", sig)
        if not 1 <= sig <= 64:
            raise ValueError(f"signal must be 1..64, not {sig}")
        return cls("kill", sig)

    @classmethod
    def inject_bytes(cls, data: Union[bytes, bytearray, memoryview], *,
                     seal: bool = True, cloexec: bool = True,
                     track: Optional[int] = None) -> "NotifAction":
        """The syscall returns a new fd in the trapped process: a memfd
        holding a copy of ``data`` (at most 1 MiB), positioned at 0.

        ``seal=False`` leaves the memfd writable (sealed against writes by
        default); ``cloexec=False`` leaves the new fd open across execve.

        ``track`` (an int cookie, 0..2**64-1, of the handler's choosing)
        makes the injection tracked: once the fd is installed, and before
        the syscall returns it to the process, the worker calls
        :meth:`Handler.injected` ``(pid, fd, track)`` of its handlers, so
        per-fd bookkeeping is in place before any handler sees a use of
        that fd (a read, a close). None (the default): not tracked.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"inject_bytes data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if len(data) > MAX_INJECT_BYTES:
            raise ValueError(f"inject_bytes: {len(data)} bytes, more than "
                             f"the {MAX_INJECT_BYTES} the protocol carries")
        if track is not None:
            track = _int("inject_bytes track cookie", track)
            if not 0 <= track <= _UINT64_MAX:
                raise ValueError(f"inject_bytes track cookie must be "
                                 f"0..2**64-1, not {track}")
        flags = 0
        if not seal:
            flags |= _native.SG_INJECT_WRITABLE
        if not cloexec:
            flags |= _native.SG_INJECT_NO_CLOEXEC
        return cls("inject", data=data, flags=flags, track=track)

    # ---- inspection ---------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"continue"``, ``"errno"``, ``"return"``, ``"kill"`` or
        ``"inject"``."""
        return self._kind

    @property
    def value(self) -> int:
        """The errno, return value or signal (0 for the other kinds)."""
        return self._value

    @property
    def data(self) -> bytes:
        """The bytes of an ``inject`` action (``b""`` for the others)."""
        return self._data

    @property
    def seal(self) -> bool:
        """Whether an injected memfd is sealed against writes."""
        return not self._flags & _native.SG_INJECT_WRITABLE

    @property
    def cloexec(self) -> bool:
        """Whether an injected fd is close-on-exec."""
        return not self._flags & _native.SG_INJECT_NO_CLOEXEC

    @property
    def track(self) -> Optional[int]:
        """The cookie of a tracked ``inject`` action, else None."""
        return self._track

    def __repr__(self) -> str:
        if self._kind == "continue":
            return "NotifAction.continue_()"
        if self._kind == "errno":
            return f"NotifAction.errno({self._value})"
        if self._kind == "return":
            return f"NotifAction.returns({self._value})"
        if self._kind == "kill":
            return f"NotifAction.kill({self._value})"
        track = "" if self._track is None else f", track={self._track}"
        return (f"NotifAction.inject_bytes(<{len(self._data)} bytes>, "
                f"seal={self.seal}, cloexec={self.cloexec}{track})")

    def _key(self) -> tuple:
        return (self._kind, self._value, self._data, self._flags, self._track)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NotifAction):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self):
        return (NotifAction, self._key())

    # ---- to C ---------------------------------------------------------------

    def _apply(self, native: "_native.Native", action: int) -> Optional[str]:
        """Sets this action on the C ``sg_action *action``: None, or why it
        could not be set (the handler then fails)."""
        kind = self._kind
        if kind == "continue":
            native.sg_continue(action)
        elif kind == "errno":
            native.sg_errno(action, self._value)
        elif kind == "return":
            native.sg_return(action, self._value)
        elif kind == "kill":
            native.sg_kill(action, self._value)
        else:
            # C copies the bytes before returning (self._data outlives it).
            if self._track is None:
                r = native.sg_inject_bytes(action, self._data,
                                           len(self._data), self._flags)
            else:
                r = native.require("sg_inject_tracked")(
                    action, self._data, len(self._data), self._flags,
                    self._track)
            if r < 0:
                return (f"inject_bytes of {len(self._data)} bytes refused: "
                        f"{os.strerror(-r)}")
        return None


_CONTINUE = NotifAction("continue")
