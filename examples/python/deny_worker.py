"""A deny-list worker script: started by sysgate itself, it serves a
PathDenyHandler until the run ends.

    sysgate run --worker 'python3 examples/python/deny_worker.py PATTERN...' -- CMD [ARG...]

Fails with EPERM every common path syscall (open, exec, stat, unlink ...)
whose path matches one of the fnmatch PATTERNs ('*' also matches '/'), as
the program passed it. A path that cannot be read is let through (deny-list
semantics); if the handler fails the call gets EPERM.

A policy convenience, not a confinement boundary (relative paths, symlinks
and "..": `cd /etc; cat hostname` goes through): confine with -r/-w
(Landlock) and --deny-syscall.
"""
import sys

from sysgate import serve
from sysgate.presets import COMMON_PATH_SYSCALLS, PathDenyHandler


def main(argv):
    if len(argv) < 2:
        print("usage: deny_worker.py PATTERN... (started by sysgate run --worker)",
              file=sys.stderr)
        return 2
    deny = PathDenyHandler(deny=argv[1:])
    return serve([(s, deny) for s in COMMON_PATH_SYSCALLS])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
