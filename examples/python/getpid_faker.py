"""Make getpid() return a fixed value in a program, with sysgate.run().

    python3 examples/python/getpid_faker.py [VALUE] [-- CMD [ARG...]]

Without a command, runs python3 -c 'import os; print(os.getpid())', which
prints VALUE (default 4242). The handler class is defined here and runs in
a separate, sandboxed worker process that sysgate.run() starts.
"""
import sys

from sysgate import Handler, NotifAction, run


class FakePid(Handler):
    def __init__(self, value):
        self.value = value

    def handle(self, ctx):
        return NotifAction.returns(self.value)


def main(argv):
    args = argv[1:]
    cmd = ["/usr/bin/python3", "-c", "import os; print(os.getpid())"]
    if "--" in args:
        cmd = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    value = int(args[0]) if args else 4242
    result = run(cmd, [("getpid", FakePid(value))])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
