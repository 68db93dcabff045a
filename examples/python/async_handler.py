"""An asynchronous handler: `async def handle` awaits (a lookup, a rate
limiter, a remote policy service ...) while the worker goes on with other
notifications.

    python3 examples/python/async_handler.py

The program runs 4 threads that each call getppid() once; the handler takes
0.5 s to decide each call, but the 4 answers overlap, so the program is done
in about 0.5 s, not 2 s.
"""
import asyncio
import sys

from sysgate import ExceptionPolicy, Handler, NotifAction, run

# getppid through ctypes, which lets go of the GIL during the call (os.getppid
# holds it, and the 4 calls could not even be made at the same time).
PROGRAM = """
import ctypes, threading, time
getppid = ctypes.CDLL(None).getppid
t0 = time.monotonic()
ts = [threading.Thread(target=getppid) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"4 calls answered in {time.monotonic() - t0:.2f} s")
"""


class SlowDecision(Handler):
    on_exception = ExceptionPolicy.DENY_EPERM  # fail closed, without killing

    async def handle(self, ctx):
        await asyncio.sleep(0.5)  # e.g. ask a policy service
        self.emit({"pid": ctx.pid, "syscall": ctx.syscall_nr})
        return NotifAction.continue_()


def main():
    result = run(["/usr/bin/python3", "-c", PROGRAM], [("getppid", SlowDecision())])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(f"the handler decided {len(result.records)} calls")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
