"""An allow-list: a program may open only the files it is allowed, with
sysgate.run().

    python3 examples/python/allow_list.py

Runs a small Python program that opens /etc/hostname and /etc/passwd; only
the first is on the allow-list (besides what the interpreter needs to
start), so the second open fails with EACCES. A path that cannot be read is
refused too, and if the handler fails the call gets EPERM (fail-closed).
"""
import sys

from sysgate import run
from sysgate.presets import PathAllowHandler

PROGRAM = """
for path in ("/etc/hostname", "/etc/passwd"):
    try:
        open(path).read()
        print(f"{path}: allowed")
    except OSError as e:
        print(f"{path}: {e.strerror}")
"""

# What /usr/bin/python3 opens to start, and the one file the program may read.
ALLOW = ["/usr/*", "/lib/*", "/lib64/*", "/etc/ld.so.cache", "/etc/localtime",
         "/proc/*", "/dev/*", "/etc/hostname"]


def main():
    allow = PathAllowHandler(allow=ALLOW)
    result = run(["/usr/bin/python3", "-I", "-c", PROGRAM], [("openat", allow)])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
