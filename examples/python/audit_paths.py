"""Audit the paths a command opens, executes, stats ..., with sysgate.run().

    python3 examples/python/audit_paths.py [CMD [ARG...]]

Runs CMD (default: cat /etc/hostname) under sysgate with an AuditPathsHandler
on every common path syscall. The handler runs in a separate, sandboxed
worker process; what it sees comes back through Handler.emit, as
RunResult.records. Prints the command's output, then one line per call:
SYSCALL PATH ("?" where the path could not be read).
"""
import sys

from sysgate import run
from sysgate.presets import COMMON_PATH_SYSCALLS, AuditPathsHandler


def record(ctx, path):
    # Runs in the worker, for every call; fail-open (an exception here
    # lets the call run). Undecodable bytes in a path are escaped for JSON.
    if path is not None:
        path = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    audit.emit([ctx.syscall_name, path])


audit = AuditPathsHandler(record)


def main(argv):
    cmd = argv[1:] or ["cat", "/etc/hostname"]
    result = run(cmd, [(s, audit) for s in COMMON_PATH_SYSCALLS])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    for syscall, path in result.records:
        shown = "?" if path is None else path or '""'
        print(f"{syscall:<12} {shown}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
