"""The worker that :func:`sysgate.run` starts, from its bundle directory:

    <python> -I <bundle>/sysgate/_worker_main.py <bundle>/handlers.pkl

Puts the bundle on ``sys.path`` (this package and cloudpickle are there),
points ``SYSGATE_LIB`` at the bundled native library, unpickles the
handlers and serves them. Exit status 0 after a normal end of the run, 1
otherwise (the cause is on stderr, which sysgate relays).
"""

import os
import sys


def main(argv):
    """Serves the handlers pickled in ``argv[1]``."""
    sys.dont_write_bytecode = True  # the bundle is read-only to us
    if len(argv) != 2:
        sys.stderr.write("usage: _worker_main.py HANDLERS.pkl\n")
        return 2
    package = os.path.dirname(os.path.abspath(__file__))
    bundle = os.path.dirname(package)
    sys.path.insert(0, bundle)
    os.environ["SYSGATE_LIB"] = os.path.join(package, "_lib",
                                             "libsysgate.so")

    import pickle

    import sysgate

    try:
        with open(argv[1], "rb") as f:
            payload = pickle.load(f)
    except Exception as e:  # noqa: BLE001 - any failure is reported alike
        sys.stderr.write(f"sysgate python worker: cannot load the handlers "
                         f"from {argv[1]}: {type(e).__name__}: {e}\n")
        return 1
    if not isinstance(payload, dict) or payload.get("format") != 1:
        sys.stderr.write(f"sysgate python worker: {argv[1]} was not made by "
                         "this version of sysgate.run\n")
        return 1
    r = sysgate.serve(payload["handlers"],
                      max_concurrency=payload.get("max_concurrency"))
    return 0 if r == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
