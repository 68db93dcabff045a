"""sysgate: Python handlers for the sysgate seccomp supervisor (docs/sdk-python.md).

A handler decides trapped syscalls of a sandboxed program; it runs in a
separate, sandboxed worker process, never in the supervisor::

    import sysgate
    from sysgate import Handler, NotifAction

    class FakePid(Handler):
        def handle(self, ctx):
            return NotifAction.returns(4242)

    result = sysgate.run(["python3", "-c", "import os; print(os.getpid())"],
                         [("getpid", FakePid())])
    print(result.stdout)   # 4242

- :func:`run` runs a command under sysgate with handlers served from a
  worker process it starts (handler objects are pickled there: their
  state lives in the worker; :meth:`Handler.emit` sends results back);
- :func:`serve` turns a script into a worker, for
  ``sysgate run --worker 'python3 script.py' -- COMMAND``.

The native library (libsysgate) is loaded on first use: ``$SYSGATE_LIB``,
else a bundled copy, else an installed one.
"""

from ._errors import SysgateError
from .action import ExceptionPolicy, NotifAction
from .ctx import HandlerCtx
from .handler import Handler, serve
from .runner import RunResult, run
from . import escaped, presets
from .escaped import decode_bytes, decode_record

__version__ = "0.1.0"
SysgateError.__module__ = __name__  # shown as sysgate.SysgateError

__all__ = ["Handler", "HandlerCtx", "NotifAction", "ExceptionPolicy", "serve",
           "run", "RunResult", "SysgateError", "presets", "escaped",
           "decode_bytes", "decode_record"]
