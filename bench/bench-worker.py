"""The Python worker side of the benchmark: the same handlers, mode for mode, as
sg_bench_worker (bench-worker.c), written against the Python SDK.

    python3 bench-worker.py MODE    (started by `sysgate run --worker '... MODE'`)

MODE:
  continue  getppid: continue at once (the bare supervisor -> worker -> supervisor
            hop, plus the SDK's way into Python and back)
  nopath    faccessat: continue at once, without reading the path (the
            reference for path)
  path      faccessat: check the path of argument 1 (pre-read by the supervisor,
            it travels in the snapshot) is "/", continue
  read      pwrite64: read the 256-byte buffer at argument 1 with one ctx.read
            (a round trip through the supervisor's memory proxy), check its
            bytes, continue

A check that fails raises, and the registrations use DENY_EIO: sg_bench_loop
sees EIO instead of the expected result and stops with an error, so a broken
path never passes for a fast one. Nothing is printed per call. The constants
mirror bench-shared.h.
"""
import sys

from sysgate import ExceptionPolicy, Handler, NotifAction, serve

BENCH_PATH = "/"
BENCH_READ_FD = -1
BENCH_READ_LEN = 256
EXPECTED = bytes((i * 31 + 7) & 0xFF for i in range(BENCH_READ_LEN))
CONTINUE = NotifAction.continue_()


class Continue(Handler):
    on_exception = ExceptionPolicy.DENY_EIO

    def handle(self, ctx):
        return CONTINUE


class Path(Handler):
    on_exception = ExceptionPolicy.DENY_EIO

    def handle(self, ctx):
        if ctx.read_path() != BENCH_PATH:
            raise ValueError("faccessat: not the benchmark's path")
        return CONTINUE


class Read(Handler):
    on_exception = ExceptionPolicy.DENY_EIO

    def handle(self, ctx):
        fd = ctx.args[0] & 0xFFFFFFFF  # the int argument, as the kernel reads it
        if fd != BENCH_READ_FD & 0xFFFFFFFF:
            raise ValueError("pwrite64: not the benchmark's fd")
        if ctx.read(ctx.args[1], BENCH_READ_LEN) != EXPECTED:
            raise ValueError("pwrite64: the buffer read is not the benchmark's")
        return CONTINUE


MODES = {"continue": ("getppid", Continue), "nopath": ("faccessat", Continue),
         "path": ("faccessat", Path), "read": ("pwrite64", Read)}


def main(argv):
    if len(argv) != 2 or argv[1] not in MODES:
        print("usage: bench-worker.py continue|nopath|path|read", file=sys.stderr)
        return 2
    syscall, handler = MODES[argv[1]]
    return serve([(syscall, handler())])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
