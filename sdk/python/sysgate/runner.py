"""``sysgate.run``: a command under sysgate, with Python handlers served
from a separate, sandboxed worker process.

The handlers are pickled (cloudpickle) into a private bundle directory
together with a copy of this package, of cloudpickle and of the native
library, and ``sysgate run --worker '<python> -I <bundle>/sysgate/
_worker_main.py <bundle>/handlers.pkl'`` serves them. The worker runs
confined (and as ``nobody`` when sysgate runs as root), so it can read the
bundle but nothing of the caller's: handler objects in the worker are
copies, and their results come back through :meth:`Handler.emit`
(``RunResult.records``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import types
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Union

from . import _native, escaped
from ._errors import SysgateError
from .handler import (HandlerList, Registration, registrations,
                      resolve_syscall, thread_count)

#: Seconds Python waits for sysgate beyond its own ``--timeout``.
TIMEOUT_MARGIN = 10.0

PathArg = Union[str, "os.PathLike[str]"]
_PAYLOAD_FORMAT = 1


@dataclass
class RunResult:
    """What :func:`run` observed.

    ``returncode`` is sysgate's exit status (the command's status, 128+N if
    it died of signal N, 124 on timeout, 125 for sysgate's own errors such
    as a rejected registration or a worker that failed to start);
    ``stdout``/``stderr`` are sysgate's output as text (the command's, plus
    sysgate's and the worker's diagnostics on stderr); ``records`` holds
    the ``data`` of every record the handlers emitted, in order;
    ``events`` every audit event (one dict per line of the audit log);
    ``args`` the sysgate command line that was run.
    """

    returncode: int
    stdout: str
    stderr: str
    records: List[Any] = field(default_factory=list)
    events: List[Dict[str, Any]] = field(default_factory=list)
    args: List[str] = field(default_factory=list)


# ---- arguments --------------------------------------------------------------


def _str_list(what: str, value: Optional[Iterable[Any]]) -> List[str]:
    """A list of paths or names; a single str/bytes is refused (it would be
    taken character by character)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a list, not a single "
                        f"{type(value).__name__} (write [{value!r}])")
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{what} must be a list, not {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"{what}: {item!r} is not a str or path")
        s = os.fspath(item)
        if not isinstance(s, str) or not s or "\0" in s:
            raise ValueError(f"{what}: bad entry {item!r}")
        out.append(s)
    return out


def _positive(what: str, value: Any, kind: type = int) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, kind)):
        raise TypeError(f"{what} must be a number, not "
                        f"{type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{what} must be positive, not {value}")
    return value


def _text(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value or "\0" in value:
        raise ValueError(f"{what}: bad value {value!r}")
    return value


def _syscall_names(what: str, value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        raise TypeError(f"{what} must be a list, not a single "
                        f"{type(value).__name__} (write [{value!r}])")
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{what} must be a list, not {type(value).__name__}")
    return [resolve_syscall(s)[1] for s in value]


def _command(cmd: Any) -> List[str]:
    if isinstance(cmd, (str, bytes)):
        raise TypeError("cmd must be a list of arguments, not a "
                        f"{type(cmd).__name__} (write [{cmd!r}])")
    if not isinstance(cmd, (list, tuple)) or not cmd:
        raise TypeError("cmd must be a non-empty list of arguments")
    argv = []
    for a in cmd:
        if not isinstance(a, (str, os.PathLike)):
            raise TypeError(f"cmd: {a!r} is not a str")
        a = os.fspath(a)
        if not isinstance(a, str) or "\0" in a:
            raise ValueError(f"cmd: bad argument {a!r}")
        argv.append(a)
    return argv


def _options(read, write, timeout, no_network, deny_syscalls, max_procs,
             hostname, name, handler_timeout, worker_user,
             trap) -> List[str]:
    opts: List[str] = []
    for path in _str_list("read", read):
        opts += ["-r", path]
    for path in _str_list("write", write):
        opts += ["-w", path]
    if timeout is not None:
        opts += ["--timeout", repr(_positive("timeout", timeout, float))]
    if not isinstance(no_network, bool):
        raise TypeError("no_network must be a bool")
    if no_network:
        opts.append("--no-network")
    for s in _syscall_names("deny_syscalls", deny_syscalls):
        opts += ["--deny-syscall", s]
    for s in _syscall_names("trap", trap):
        opts += ["--trap", s]
    if max_procs is not None:
        opts += ["--max-procs", str(_positive("max_procs", max_procs))]
    if hostname is not None:
        opts += ["--hostname", _text("hostname", hostname)]
    if name is not None:
        opts += ["--name", _text("name", name)]
    if handler_timeout is not None:
        opts += ["--handler-timeout",
                 str(_positive("handler_timeout", handler_timeout))]
    if worker_user is not None:
        opts += ["--worker-user", _text("worker_user", worker_user)]
    return opts


def find_sysgate(sysgate_bin: Optional[PathArg] = None) -> str:
    """The sysgate binary: ``sysgate_bin``, else ``$SYSGATE_BIN``, else
    ``sysgate`` on PATH; SysgateError if none is executable."""
    if sysgate_bin is not None:
        path, origin = os.fspath(sysgate_bin), "sysgate_bin"
    elif os.environ.get("SYSGATE_BIN"):
        path, origin = os.environ["SYSGATE_BIN"], "SYSGATE_BIN"
    else:
        found = shutil.which("sysgate")
        if not found:
            raise SysgateError(
                "cannot find the sysgate binary: pass sysgate_bin=, set "
                "SYSGATE_BIN (for example build/sysgate), or put sysgate on "
                "PATH")
        return found
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SysgateError(f"{origin}={path} is not an executable file")
    return os.path.abspath(path)


def _find_python(python: Optional[PathArg]) -> str:
    if python is None:
        path = "/usr/bin/python3"
        if not os.path.exists(path):
            path = sys.executable
    else:
        path = os.fspath(python)
    if not path or not os.access(path, os.X_OK):
        raise SysgateError(f"worker interpreter {path!r} is not executable "
                           "(pass python=)")
    return os.path.abspath(path)


def _no_blanks(what: str, path: str) -> str:
    if any(c in path for c in " \t"):
        raise SysgateError(
            f"{what} {path!r} contains a blank, but sysgate splits --worker "
            "on blanks" + (" (set TMPDIR to a path without blanks)"
                           if what == "bundle directory" else ""))
    return path


# ---- pickling ---------------------------------------------------------------


def _cloudpickle():
    try:
        import cloudpickle
    except ImportError:
        raise SysgateError(
            "sysgate.run needs cloudpickle to ship handlers to the worker: "
            "apt-get install python3-cloudpickle (or pip install "
            "cloudpickle)") from None
    return cloudpickle


def _available_to_worker(module: str) -> bool:
    """Whether the worker can import ``module`` itself: this package and
    cloudpickle (bundled) and the standard library."""
    top = module.partition(".")[0]
    if top in ("sysgate", "cloudpickle", "builtins", "__main__"):
        return True
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return top in names
    mod = sys.modules.get(top)
    path = getattr(mod, "__file__", None)
    if path is None:
        return True  # built into the interpreter
    stdlib = sysconfig.get_paths()["stdlib"]
    return (path.startswith(stdlib + os.sep) and "-packages" not in path)


_SCALARS = (str, bytes, bytearray, int, float, complex, bool, type(None))


def _modules_to_ship(roots: Sequence[Any]) -> Set[str]:
    """Modules defining the handlers' classes and the functions, classes
    and objects they hold (a few levels deep) that the worker cannot
    import: pickled by value, so handlers written in a test module or an
    uninstalled package work."""
    found: Set[str] = set()
    seen: Set[int] = set()

    def add(module: Optional[str]) -> None:
        if module and not _available_to_worker(module) \
                and module in sys.modules:
            found.add(module)

    def visit(obj: Any, depth: int) -> None:
        if isinstance(obj, _SCALARS) or id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, type):
            for k in obj.__mro__:
                add(k.__module__)
        elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
            add(getattr(obj, "__module__", None))
        elif isinstance(obj, types.MethodType):
            visit(obj.__func__, depth + 1)
            visit(obj.__self__, depth + 1)
        elif isinstance(obj, functools.partial):
            visit(obj.func, depth + 1)
            for a in obj.args[:100]:
                visit(a, depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for i, item in enumerate(obj):
                if i == 1000:
                    break
                visit(item, depth + 1)
        elif isinstance(obj, dict):
            for i, item in enumerate(obj.values()):
                if i == 1000:
                    break
                visit(item, depth + 1)
        else:
            visit(type(obj), depth)
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict):
                visit(attrs, depth + 1)

    for root in roots:
        visit(root, 0)
    return found


_pickle_lock = threading.Lock()


def pickle_payload(regs: List[Registration],
                   max_concurrency: Optional[int]) -> bytes:
    """The worker's handlers.pkl: the registrations (by syscall number) and
    the worker's settings; SysgateError if they cannot be pickled."""
    cloudpickle = _cloudpickle()
    payload = {
        "format": _PAYLOAD_FORMAT,
        "handlers": [(r.nr, r.handler) for r in regs],
        "max_concurrency": max_concurrency,
    }
    modules = _modules_to_ship([r.handler for r in regs])
    with _pickle_lock:
        listed = getattr(cloudpickle, "list_registry_pickle_by_value",
                         lambda: set())()
        registered = []
        try:
            for name in sorted(modules - set(listed)):
                try:
                    cloudpickle.register_pickle_by_value(sys.modules[name])
                    registered.append(name)
                except (ValueError, AttributeError):
                    pass  # not registrable: pickled by reference
            return cloudpickle.dumps(payload, protocol=pickle.DEFAULT_PROTOCOL)
        except Exception as e:
            raise SysgateError(
                f"cannot pickle the handlers for the worker process: {e}"
            ) from e
        finally:
            for name in registered:
                cloudpickle.unregister_pickle_by_value(sys.modules[name])


# ---- the bundle -------------------------------------------------------------


def _copy_package(src: str, dst: str) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "_lib"))


def _open_up(root: str) -> None:
    """Readable (and its directories enterable) by the worker's user."""
    os.chmod(root, 0o755)
    for top, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(top, d), 0o755)
        for f in files:
            os.chmod(os.path.join(top, f), 0o644)


def stage_bundle(bundle: str, payload: bytes, library: str) -> str:
    """Fills the directory ``bundle`` for the worker; its --worker spec
    minus the interpreter: the script and the pickle."""
    here = os.path.dirname(os.path.abspath(__file__))
    pkg = os.path.join(bundle, "sysgate")
    _copy_package(here, pkg)
    os.mkdir(os.path.join(pkg, "_lib"))
    shutil.copyfile(library, os.path.join(pkg, "_lib", "libsysgate.so"))
    cloudpickle = _cloudpickle()
    cp_src = os.path.dirname(os.path.abspath(cloudpickle.__file__))
    _copy_package(cp_src, os.path.join(bundle, "cloudpickle"))
    pkl = os.path.join(bundle, "handlers.pkl")
    with open(pkl, "wb") as f:
        f.write(payload)
    _open_up(bundle)
    return f"{pkg}/_worker_main.py {pkl}"


def _beneath(path: str, top: str) -> bool:
    path, top = os.path.realpath(path), os.path.realpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def _outside(write: List[str], cwd: Optional[PathArg]) -> str:
    """A directory for run()'s private files beneath none of the ``write``
    paths (relative ones are sysgate's, beneath ``cwd``): the temporary
    directory, else the first of $XDG_RUNTIME_DIR, /dev/shm, /var/tmp that
    is."""
    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    write = [os.path.join(base, w) for w in write]
    candidates = [tempfile.gettempdir(), os.environ.get("XDG_RUNTIME_DIR"),
                  "/dev/shm", "/var/tmp"]
    for d in candidates:
        if d and os.path.isdir(d) and not any(_beneath(d, w) for w in write):
            return d
    raise SysgateError(
        "run: every place for the audit records (the temporary directory, "
        "$XDG_RUNTIME_DIR, /dev/shm, /var/tmp) is beneath a write path, "
        "where the command could rewrite them; set TMPDIR elsewhere")


def _read_audit(path: str) -> List[Dict[str, Any]]:
    events = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed sysgate
                if isinstance(event, dict):
                    events.append(event)
    except OSError:
        pass
    return events


# ---- run --------------------------------------------------------------------


def run(cmd: Sequence[PathArg], handlers: HandlerList, *,
        read: Optional[Sequence[PathArg]] = None,
        write: Optional[Sequence[PathArg]] = None,
        timeout: Optional[float] = None,
        no_network: bool = False,
        deny_syscalls: Optional[Sequence[Union[str, int]]] = None,
        max_procs: Optional[int] = None,
        hostname: Optional[str] = None,
        name: Optional[str] = None,
        handler_timeout: Optional[int] = None,
        worker_user: Optional[str] = None,
        sysgate_bin: Optional[PathArg] = None,
        python: Optional[PathArg] = None,
        env: Optional[Dict[str, str]] = None,
        input: Optional[str] = None,
        cwd: Optional[PathArg] = None,
        max_concurrency: Optional[int] = None,
        trap: Optional[Sequence[Union[str, int]]] = None) -> RunResult:
    """Runs ``cmd`` under sysgate with ``handlers`` served by a separate,
    sandboxed worker process; waits for it and returns a :class:`RunResult`.

    ``handlers`` is a list of ``(syscall, Handler instance)`` pairs, as for
    :func:`serve`. They are checked before anything starts (TypeError /
    ValueError), then pickled with cloudpickle into a private bundle
    directory the worker can read; the worker unpickles *copies* of them.
    Handler state therefore lives in the worker process (and starts afresh
    if the worker is restarted): nothing a handler changes is seen here.
    Send results back with :meth:`Handler.emit`; they are in
    ``RunResult.records``.

    Options map to sysgate's command line: ``read``/``write`` (lists of
    paths: ``-r``/``-w``), ``timeout`` (seconds, ``--timeout``; Python
    waits 10 s more before giving up with SysgateError), ``no_network``,
    ``deny_syscalls`` (``--deny-syscall``), ``trap`` (``--trap``),
    ``max_procs``, ``hostname``, ``name`` (the sandbox's), ``handler_timeout``
    (milliseconds), ``worker_user``. ``max_concurrency`` (1..64) is the
    worker's, as for :func:`serve`: its handler threads (default 16) and
    the async answers it keeps pending at once (default 64). ``env``,
    ``input`` (text for the command's stdin) and ``cwd`` are those of
    sysgate's process (and so of the command and the worker); stdin is
    inherited without ``input``.

    ``sysgate_bin`` defaults to ``$SYSGATE_BIN``, then ``sysgate`` on PATH;
    ``python`` (the worker's interpreter, same minor version as this one
    for by-value pickles) to /usr/bin/python3, else ``sys.executable``.
    The bundle lives under ``tempfile.gettempdir()`` (``$TMPDIR``), which
    the worker's user must be able to enter, and is removed afterwards.
    The audit log the records are read from is kept in a private directory
    (mode 0700, the caller's, beneath none of the ``write`` paths, so a
    command confined by ``read``/``write`` cannot rewrite it), also removed
    afterwards. Without ``read``/``write`` the command's files are not
    restricted and it could: sysgate says so on stderr.
    """
    argv = _command(cmd)
    regs = registrations(handlers)
    threads = thread_count(max_concurrency)
    opts = _options(read, write, timeout, no_network, deny_syscalls,
                    max_procs, hostname, name, handler_timeout, worker_user,
                    trap)
    if input is not None and not isinstance(input, str):
        raise TypeError(f"input must be a str, not {type(input).__name__}")
    sysgate = find_sysgate(sysgate_bin)
    interpreter = _no_blanks("worker interpreter", _find_python(python)) \
        if regs else None
    payload = pickle_payload(regs, threads) if regs else None
    library = _native.load().real_path() if regs else None

    py_timeout = None if timeout is None else float(timeout) + TIMEOUT_MARGIN
    tmp = tempfile.gettempdir()
    # The records file in a directory of the caller's, mode 0700, beneath
    # no -w path: the command cannot rewrite it when its files are
    # restricted (without read/write it runs unrestricted, as the caller:
    # sysgate warns then that it can).
    private = tempfile.mkdtemp(prefix="sysgate-run-",
                               dir=_outside(_str_list("write", write), cwd))
    audit = os.path.join(private, "audit.jsonl")
    bundle = None
    try:
        args = [sysgate, "run", *opts, "--audit", audit]
        if regs:
            bundle = _no_blanks("bundle directory",
                                tempfile.mkdtemp(prefix="sysgate-py-",
                                                 dir=tmp))
            os.chmod(bundle, 0o755)
            script = stage_bundle(bundle, payload, library)
            args += ["--worker", f"{interpreter} -I {script}"]
        args += ["--", *argv]
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True,
                errors="backslashreplace", env=env, input=input,
                cwd=os.fspath(cwd) if cwd is not None else None,
                timeout=py_timeout)
        except subprocess.TimeoutExpired as e:
            raise SysgateError(
                f"sysgate did not exit {TIMEOUT_MARGIN:g} s after its "
                f"--timeout of {timeout} s; killed") from e
        events = _read_audit(audit)
        records = [escaped.decode_record(e.get("data")) for e in events
                   if e.get("type") == "record"]
        return RunResult(proc.returncode, proc.stdout, proc.stderr, records,
                         events, args)
    finally:
        if bundle is not None:
            shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
