"""Handlers, their registrations, and serving them as a worker (docs/sdk-python.md).

A worker process calls :func:`serve`; the C SDK connects to the supervisor,
receives notifications and calls the registered handlers on its handler
threads (``SYSGATE_WORKER_THREADS`` of them). Each call enters Python
through one ctypes callback, which builds a :class:`HandlerCtx`, calls
``handle`` and sets the returned :class:`NotifAction` on the C action.

When ``handle`` returns a coroutine (``async def handle``), the callback
defers the answer (``sg_defer``), schedules the coroutine on the worker's
asyncio loop and returns at once, so its thread goes on with the next
notification; when the coroutine finishes, the loop's thread sets its
result on the deferred answer's action and completes it (``sg_complete``).

Tracked injections (``inject_bytes(..., track=cookie)``) are reported
through a second callback (``sg_worker_on_injected``), registered once per
:func:`serve` when a handler overrides :meth:`Handler.injected`: the C SDK
calls it on its receiving thread (the one in ``sg_worker_run``), before it
takes the next message from the supervisor, so before any later
notification reaches a handler.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import inspect
import json
import os
import re
import reprlib
import sys
import threading
import traceback
from typing import (Any, Awaitable, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

from . import _native, escaped
from ._errors import SysgateError
from .action import ExceptionPolicy, NotifAction
from .ctx import HandlerCtx


class _ThreadState(threading.local):
    kept = False


_thread_state = _ThreadState()


def _keep_thread_state() -> None:
    """Called on each SDK handler thread's first call into Python: ctypes
    makes (and after the call destroys) a Python thread state for every
    call from a thread Python did not start, several microseconds each time.
    One PyGILState_Ensure never released keeps this thread's for good (the
    threads live as long as the worker)."""
    _thread_state.kept = True
    try:
        ctypes.pythonapi.PyGILState_Ensure.restype = ctypes.c_int
        ctypes.pythonapi.PyGILState_Ensure()
    except (AttributeError, OSError):
        pass  # not CPython: nothing to keep

#: Handler threads of a Python worker unless told otherwise.
DEFAULT_THREADS = 16
#: The C SDK's limit.
MAX_THREADS = 64
#: Async answers a worker keeps pending at once unless told otherwise: as
#: many as the supervisor lets one worker hold.
DEFAULT_MAX_PENDING = 64
#: The longest record sg_worker_emit takes, bytes.
MAX_RECORD_BYTES = 64 << 10

ENV_URL = "SYSGATE_WORKER_URL"
ENV_THREADS = "SYSGATE_WORKER_THREADS"

Syscall = Union[str, int]
HandlerList = Sequence[Tuple[Syscall, "Handler"]]


class Handler:
    """Base class of handlers: subclass it and override :meth:`handle`.

    ``on_exception`` (class or instance attribute) is what answers when
    ``handle`` fails (raises, returns something that is not a valid
    :class:`NotifAction`), hangs past ``--handler-timeout``, or the worker
    dies: :attr:`ExceptionPolicy.KILL` by default (fail closed).

    ``handle`` may be ``async def``: its coroutine then runs on the
    worker's asyncio loop and answers when it finishes, while the worker
    goes on with other notifications, so slow handlers overlap. At most
    ``max_concurrency`` answers (default 64, what sysgate lets one worker
    hold) may be pending at once; past that, a new notification whose
    handler is async fails at once (``on_exception`` applies). An answer
    still pending at ``--handler-timeout`` gets ``on_exception`` too (and
    sysgate restarts the worker as hung). The :class:`HandlerCtx` stays
    usable until the coroutine finishes; its memory calls block the loop
    for one round trip each.

    Handlers run in the worker process, possibly on several threads at
    once: state they share must be thread-safe. With :func:`sysgate.run`,
    the handler objects are copies (pickled into a separate, sandboxed
    worker process): changes to their state are not seen by the caller.
    Use :meth:`emit` to send results back.
    """

    on_exception: ExceptionPolicy = ExceptionPolicy.KILL

    def handle(self, ctx: HandlerCtx) -> Union[NotifAction,
                                               Awaitable[NotifAction]]:
        """Decides one trapped syscall: returns the action to take."""
        raise NotImplementedError(
            f"{type(self).__name__} does not override Handler.handle")

    def injected(self, pid: int, fd: int, cookie: int) -> None:
        """Told that a tracked injection was installed: process ``pid``
        (the trapped thread, as ``ctx.pid``) got ``fd`` for an
        ``inject_bytes(..., track=cookie)`` answer. Does nothing unless
        overridden.

        Called for every tracked injection of the worker, on every
        distinct handler of :func:`serve` (or :func:`sysgate.run`) that
        overrides it, in registration order, whichever handler answered:
        use the cookie to tell your own injections apart (a handler for
        ``read`` can so learn about the fds its ``openat`` sibling
        injected). It runs before the trapped syscall returns the fd, and
        before any handler is called for a later notification, so
        bookkeeping done here is in place when a handler sees the fd used
        (handlers of earlier notifications may still run: share state
        thread-safely). It runs on the worker's receiving thread, which
        receives nothing else meanwhile: keep it short, synchronous (not
        ``async def``), and never wait for a handler. An exception is
        printed on stderr and otherwise ignored (the fd stays installed).
        """

    def emit(self, obj: Any) -> None:
        """Sends ``obj`` (JSON-serializable) to whoever runs the sandbox.

        It lands in sysgate's ``--audit`` log as
        ``{"type": "record", "worker": ..., "data": obj}``, and in
        ``RunResult.records`` of :func:`sysgate.run`: the supported way to
        get results out of a worker. At most 64 KiB of JSON. Byte strings
        are kept exactly: ``bytes``, and strings holding surrogate escapes
        (a path with undecodable bytes, as the SDK hands it out) or NUL,
        are written ``{"escaped": E}`` (:mod:`sysgate.escaped`), and
        ``RunResult.records`` gives them back as such strings. Dict keys
        must be clean text. Raises SysgateError outside a running worker.
        """
        worker = _current_worker
        if worker is None:
            raise SysgateError(
                "Handler.emit: no worker is running in this process (emit "
                "works in handlers served by serve() or run())")
        worker.emit(obj)


class Registration(NamedTuple):
    """One checked ``(syscall, handler)`` pair."""

    nr: int
    name: str
    handler: Handler
    on_exception: ExceptionPolicy


def resolve_syscall(syscall: Syscall) -> Tuple[int, str]:
    """``(number, name)`` of a native syscall given by name or number.

    TypeError for anything but str or int (bool included); ValueError for
    negative numbers and syscalls unknown on this architecture.
    """
    if isinstance(syscall, bool):
        raise TypeError(f"syscall {syscall!r} is a bool, not a name or number")
    if isinstance(syscall, int):
        if syscall < 0:
            raise ValueError(f"syscall number {syscall} is negative")
        name = _native.syscall_name(syscall)
        if name is None:
            raise ValueError(
                f"syscall number {syscall} is unknown on this architecture")
        return int(syscall), name
    if isinstance(syscall, str):
        nr = _native.syscall_nr(syscall) if syscall and "\0" not in syscall \
            else -1
        if nr < 0:
            raise ValueError(
                f"unknown syscall {syscall!r} on this architecture")
        return nr, _native.syscall_name(nr) or syscall
    raise TypeError(f"syscall must be a name or a number, not "
                    f"{type(syscall).__name__}")


def _policy(handler: Handler) -> ExceptionPolicy:
    p = handler.on_exception
    if isinstance(p, bool) or not isinstance(p, int):
        raise TypeError(f"{type(handler).__name__}.on_exception must be an "
                        f"ExceptionPolicy, not {type(p).__name__}")
    try:
        return ExceptionPolicy(p)
    except ValueError:
        raise ValueError(f"{type(handler).__name__}.on_exception is {p}, "
                         "not an ExceptionPolicy") from None


def registrations(handlers: HandlerList) -> List[Registration]:
    """Checks a ``[(syscall, handler), ...]`` list; its registrations.

    Raises TypeError/ValueError naming the offending entry, before any
    worker or sandbox starts.
    """
    if not isinstance(handlers, (list, tuple)):
        raise TypeError("handlers must be a list of (syscall, Handler) "
                        f"pairs, not {type(handlers).__name__}")
    regs = []
    for i, pair in enumerate(handlers):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"handlers[{i}] must be a (syscall, Handler) "
                            f"pair, not {reprlib.repr(pair)}")
        syscall, handler = pair
        nr, name = resolve_syscall(syscall)
        if not isinstance(handler, Handler):
            hint = ""
            if isinstance(handler, type) and issubclass(handler, Handler):
                hint = f" (an instance is needed: {handler.__name__}())"
            raise TypeError(f"handlers[{i}] for {name}: "
                            f"{reprlib.repr(handler)} is not a "
                            f"sysgate.Handler instance{hint}")
        if type(handler).handle is Handler.handle:
            raise TypeError(f"handlers[{i}] for {name}: "
                            f"{type(handler).__name__} does not override "
                            "handle()")
        if inspect.iscoroutinefunction(getattr(handler, "injected", None)):
            raise TypeError(f"handlers[{i}] for {name}: "
                            f"{type(handler).__name__}.injected must not be "
                            "async def (it runs before the worker takes the "
                            "next notification)")
        regs.append(Registration(nr, name, handler, _policy(handler)))
    return regs


def thread_count(max_concurrency: Optional[int]) -> Optional[int]:
    """Checks ``max_concurrency`` (None or 1..64)."""
    if max_concurrency is None:
        return None
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency,
                                                           int):
        raise TypeError("max_concurrency must be an int, not "
                        f"{type(max_concurrency).__name__}")
    if not 1 <= max_concurrency <= MAX_THREADS:
        raise ValueError(f"max_concurrency must be 1..{MAX_THREADS}, not "
                         f"{max_concurrency}")
    return max_concurrency


# ---- the asyncio loop of async handlers -------------------------------------


class _AsyncRunner:
    """One asyncio loop in a daemon thread, started on first use; handler
    threads submit coroutines and wait for them (without the GIL)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(
                    target=main, name="sysgate-asyncio", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, awaitable: Awaitable) -> Any:
        """The result of awaitable, run on the loop (for a libsysgate
        without deferred answers)."""
        loop = self._loop or self._start()
        if not asyncio.iscoroutine(awaitable):
            awaitable = _await(awaitable)
        return asyncio.run_coroutine_threadsafe(awaitable, loop).result()

    def submit(self, coro: Awaitable) -> None:
        """Runs the coroutine coro on the loop, without waiting for it."""
        loop = self._loop or self._start()
        asyncio.run_coroutine_threadsafe(coro, loop)

    def close(self) -> None:
        """Cancels what still runs on the loop (waiting up to
        CLOSE_WAIT seconds for it to finish), then stops the loop."""
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(
                timeout=CLOSE_WAIT + 1.0)
        except BaseException:  # noqa: BLE001 - closing goes on regardless
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=1.0)


#: How long closing the loop waits for cancelled coroutines, seconds.
CLOSE_WAIT = 1.0


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CLOSE_WAIT)


def _discard(awaitable: Awaitable) -> None:
    """Drops an awaitable that will never be awaited (without the
    "never awaited" warning of a coroutine)."""
    if asyncio.iscoroutine(awaitable):
        awaitable.close()


async def _await(awaitable: Awaitable) -> Any:
    return await awaitable


# ---- the worker -------------------------------------------------------------

# An escaped NUL in JSON text (not an escaped backslash followed by "u0000").
_JSON_NUL = re.compile(r'(?<!\\)(?:\\\\)*\\u0000')
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _json_int(text: str) -> int:
    v = int(text)
    if not _INT64[0] <= v <= _INT64[1]:
        raise ValueError(f"integer {text} does not fit in 64 bits")
    return v


def _json_pairs(pairs: List[Tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys in an object (mixed int and str "
                         "keys?)")
    return dict(pairs)


def encode_record(obj: Any) -> bytes:
    """``obj`` as JSON text the supervisor accepts (jansson: valid UTF-8, no
    NUL, 64-bit integers, no duplicate keys, at most 64 KiB), byte strings
    in the audit's lossless form (:mod:`sysgate.escaped`); ValueError or
    TypeError otherwise (sending it would end the worker's run)."""
    # Bytes, and strings holding surrogate escapes (os.fsdecode's undecodable
    # bytes) or NUL, as the audit log writes such values: {"escaped": E}.
    text = json.dumps(escaped.encode_value(obj), ensure_ascii=False,
                      allow_nan=False, separators=(",", ":"))
    data = text.encode("utf-8")
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"emit: {len(data)} bytes of JSON, more than "
                         f"{MAX_RECORD_BYTES}")
    if _JSON_NUL.search(text):
        raise ValueError("emit: a string holds a NUL character, which the "
                         "audit log refuses")
    try:
        json.loads(text, parse_int=_json_int, object_pairs_hook=_json_pairs)
    except ValueError as e:
        raise ValueError(f"emit: {e}") from None
    return data


class _Worker:
    """The C worker and what its callbacks need, for one serve() call."""

    def __init__(self, native: "_native.Native", ptr: int, name: str,
                 regs: List[Registration], max_pending: int) -> None:
        self.native = native
        self.ptr = ptr
        self.name = name
        self.regs = regs
        self.asyncio = _AsyncRunner()
        self.max_pending = max_pending
        self._pending = 0  # async answers deferred, not completed yet
        self._pending_lock = threading.Lock()
        self._closing = False  # the run is over: pending answers are moot
        # Referenced for as long as C may call it (until sg_worker_free).
        self.callback = _native.HANDLER_FN(self._call)
        # The distinct handlers overriding Handler.injected, in order.
        self.injected_handlers: List[Handler] = []
        for reg in regs:
            h = reg.handler
            if (type(h).injected is not Handler.injected
                    and not any(h is o for o in self.injected_handlers)):
                self.injected_handlers.append(h)
        self.injected_callback = _native.INJECTED_FN(self._injected)

    def emit(self, obj: Any) -> None:
        data = encode_record(obj)
        emit = self.native.require("sg_worker_emit")
        r = emit(self.ptr, data, len(data))
        if r < 0:
            over = " (the run is over)" if -r == errno.ENOTCONN else ""
            raise SysgateError(f"emit: {os.strerror(-r)}{over}")

    def _call(self, ctx_ptr: int, action_ptr: int, ud: Optional[int]) -> int:
        """The C handler: 0 after setting the action, 1 on failure."""
        if not _thread_state.kept:
            _keep_thread_state()
        reg = self.regs[ud or 0]
        ctx = None
        deferred = False
        try:
            ctx = HandlerCtx._from_native(self.native, ctx_ptr)
            result = reg.handler.handle(ctx)
            if type(result) is not NotifAction and inspect.isawaitable(result):
                if self.native.has("sg_defer"):
                    deferred = self._defer(reg, ctx, ctx_ptr, result)
                    return 0 if deferred else 1
                result = self.asyncio.run(result)
            if not isinstance(result, NotifAction):
                self._report(reg, ctx, f"returned {reprlib.repr(result)}, "
                             "not a NotifAction")
                return 1
            why = result._apply(self.native, action_ptr)
            if why is not None:
                self._report(reg, ctx, why)
                return 1
            return 0
        except BaseException as e:  # the worker keeps serving
            self._report(reg, ctx, None, e)
            return 1
        finally:
            if ctx is not None and not deferred:
                ctx._close()

    def _injected(self, pid: int, fd: int, cookie: int,
                  ud: Optional[int]) -> None:
        """The C sg_injected_fn: Handler.injected of every handler that
        overrides it; nothing it raises gets out."""
        for handler in self.injected_handlers:
            try:
                result = handler.injected(pid, fd, cookie)
                if inspect.isawaitable(result):
                    _discard(result)
                    raise TypeError("injected() returned an awaitable: it "
                                    "must be a plain (not async) method")
            except BaseException as e:  # the worker keeps serving
                self._report_injected(handler, pid, fd, cookie, e)

    def _report_injected(self, handler: Handler, pid: int, fd: int,
                         cookie: int, exc: BaseException) -> None:
        try:
            tb = exc.__traceback__
            if tb is not None and tb.tb_frame.f_code is \
                    _Worker._injected.__code__:
                tb = tb.tb_next  # start in the handler, not here
            body = "".join(traceback.format_exception(type(exc), exc, tb))
            sys.stderr.write(
                f"sysgate worker \"{self.name}\": "
                f"{type(handler).__name__}.injected(pid={pid}, fd={fd}, "
                f"cookie={cookie}) raised (ignored):\n{body}")
            sys.stderr.flush()
        except BaseException:
            pass

    def _defer(self, reg: Registration, ctx: HandlerCtx, ctx_ptr: int,
               awaitable: Awaitable) -> bool:
        """Answers the call later with what awaitable gives: True once the
        answer is deferred (the coroutine then completes it, exactly
        once), False if the call must fail now (reported)."""
        with self._pending_lock:
            full = self._pending >= self.max_pending
            if not full:
                self._pending += 1
        if full:
            _discard(awaitable)
            self._report(reg, ctx, f"{self.max_pending} async answers are "
                         "pending already (max_concurrency)")
            return False
        d = self.native.sg_defer(ctx_ptr)
        if not d:
            err = ctypes.get_errno()
            self._settled()
            _discard(awaitable)
            self._report(reg, ctx, f"cannot answer later: sg_defer: "
                         f"{os.strerror(err) if err else 'failed'}")
            return False
        ctx._rebind(self.native.sg_deferred_ctx(d))
        answer = self._answer(reg, ctx, d, awaitable)
        try:
            self.asyncio.submit(answer)
        except BaseException as e:  # noqa: BLE001 - answered as a failure
            answer.close()
            _discard(awaitable)
            self._report(reg, ctx, None, e)
            ctx._close()
            self.native.sg_deferred_cancel(d)
            self._settled()
        return True

    def _settled(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    async def _answer(self, reg: Registration, ctx: HandlerCtx, d: int,
                      awaitable: Awaitable) -> None:
        """Awaits the handler's answer, sets it on the deferred answer d
        and completes d (a failure if there is no valid answer)."""
        ok = False
        why: Optional[str] = None
        exc: Optional[BaseException] = None
        try:
            result = await awaitable
            if not isinstance(result, NotifAction):
                why = f"returned {reprlib.repr(result)}, not a NotifAction"
            else:
                why = result._apply(self.native,
                                    self.native.sg_deferred_action(d))
                ok = why is None
        except BaseException as e:  # the worker keeps serving
            exc = e
        finally:
            # Once the run is over (its end cancelled us), nobody waits
            # for the answer: what happened to it is not news.
            if not ok and not self._closing:
                self._report(reg, ctx, why, exc)
            ctx._close()  # waits for a memory call on another thread
            if ok:
                self.native.sg_complete(d)
            else:
                self.native.sg_deferred_cancel(d)
            self._settled()

    def _report(self, reg: Registration, ctx: Optional[HandlerCtx],
                why: Optional[str], exc: Optional[BaseException] = None
                ) -> None:
        """One block on stderr: which handler failed, and why."""
        try:
            where = f" (pid {ctx.pid})" if ctx is not None else ""
            head = (f"sysgate worker \"{self.name}\": "
                    f"{type(reg.handler).__name__} for {reg.name}{where}")
            if exc is not None:
                tb = exc.__traceback__
                if tb is not None and tb.tb_frame.f_code in (
                        _Worker._call.__code__, _Worker._answer.__code__):
                    tb = tb.tb_next  # start in the handler, not here
                body = "".join(traceback.format_exception(type(exc), exc, tb))
                text = f"{head} raised:\n{body}"
            else:
                text = f"{head} failed: {why}\n"
            text += (f"  -> exception policy "
                     f"{reg.on_exception.name} applies\n")
            sys.stderr.write(text)
            sys.stderr.flush()
        except BaseException:
            pass

    def close(self) -> None:
        """The run is over: cancels the async answers still pending (their
        completion finds the run over) and stops the loop."""
        self._closing = True
        self.asyncio.close()


_current_worker: Optional[_Worker] = None
_serving = threading.Lock()


def _default_name() -> str:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    stem = os.path.splitext(script)[0]
    return stem if stem and stem not in ("-c", "-m") else "python"


def serve(handlers: HandlerList, *, max_concurrency: Optional[int] = None,
          name: Optional[str] = None) -> int:
    """Runs this process as a sysgate worker serving ``handlers``.

    ``handlers`` is a list of ``(syscall, handler)`` pairs: a syscall name
    (``"openat"``) or number, and a :class:`Handler` instance; the order is
    the chain order. For a script started by sysgate::

        sysgate run --worker 'python3 my_worker.py' -- COMMAND

        raise SystemExit(serve([("openat", MyHandler())]))

    Returns when the run ends: the C ``sg_worker_run`` result, 0 for a
    normal end (a negative errno otherwise, its cause printed on stderr).
    The worker's name is ``$SYSGATE_WORKER_NAME`` (set by sysgate), else
    ``name``, else the script's name.

    ``max_concurrency`` (1..64) bounds the handler calls in progress at
    once: it is the number of handler threads, hence of synchronous calls
    at once (beyond it notifications wait for a thread), and the number of
    ``async def handle`` answers that may be pending at once (beyond it a
    new notification whose handler is async fails at once: its
    ``on_exception`` applies). Unset, ``$SYSGATE_WORKER_THREADS`` threads
    (else 16) and 64 pending async answers.

    Raises TypeError/ValueError for bad handlers (before connecting), and
    SysgateError outside sysgate (no ``$SYSGATE_WORKER_URL``) or if the
    native library cannot be found.
    """
    global _current_worker
    regs = registrations(handlers)
    threads = thread_count(max_concurrency)
    if name is not None and (not isinstance(name, str) or not name
                             or "\0" in name):
        raise ValueError(f"bad worker name {name!r}")
    if not os.environ.get(ENV_URL):
        raise SysgateError(
            f"serve(): {ENV_URL} is not set: this process was not started by "
            "sysgate; run it as `sysgate run --worker 'python3 SCRIPT' -- "
            "COMMAND`, or use sysgate.run()")
    native = _native.load()
    for stream in (sys.stdout, sys.stderr):
        try:  # sysgate relays them through a pipe: a line at a time
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    if threads is not None:
        os.environ[ENV_THREADS] = str(threads)
    elif not os.environ.get(ENV_THREADS):
        os.environ[ENV_THREADS] = str(DEFAULT_THREADS)
    if not _serving.acquire(blocking=False):
        raise SysgateError("serve() is already running in this process")
    try:
        name = os.environ.get("SYSGATE_WORKER_NAME") or name or _default_name()
        ptr = native.sg_worker_new(name.encode("utf-8", "surrogateescape"))
        if not ptr:
            raise MemoryError("sg_worker_new: out of memory")
        worker = _Worker(native, ptr, name, regs,
                         threads or DEFAULT_MAX_PENDING)
        try:
            for i, reg in enumerate(regs):
                r = native.sg_worker_on_nr(ptr, reg.nr, worker.callback, i,
                                           int(reg.on_exception))
                if r < 0:
                    raise SysgateError(
                        f"registering {type(reg.handler).__name__} for "
                        f"{reg.name}: {os.strerror(-r)}")
            if worker.injected_handlers:
                on_injected = native.require("sg_worker_on_injected")
                r = on_injected(ptr, worker.injected_callback, None)
                if r < 0:
                    raise SysgateError("registering Handler.injected: "
                                       f"{os.strerror(-r)}")
            _current_worker = worker
            return native.sg_worker_run(ptr)
        finally:
            _current_worker = None
            # No callback after sg_worker_run returned: cancel the async
            # answers still pending (completing them after the run is
            # harmless, and they free their memory), then free the worker.
            worker.close()
            native.sg_worker_free(ptr)
    finally:
        _serving.release()
