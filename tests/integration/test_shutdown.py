"""Signals as a plain run sees them (issue 17): dispositions the caller ignored
stay ignored, SIGPIPE is inherited, and ending the sandbox lets the command
clean up first (SIGTERM/SIGINT/SIGHUP and --timeout passed on, the rest killed
after --kill-after)."""
import os
import signal
import subprocess
import time

import pytest

from conftest import PY, SYSGATE, TIMEOUT, read_audit, run

# Installs a SIGTERM/SIGINT/SIGHUP handler that cleans up (prints the signal)
# and exits 3, says "ready", then waits for a signal.
CLEANS_UP = """
import signal, sys
def bye(sig, frame):
    print("cleanup", sig, flush=True)
    sys.exit(3)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, bye)
print("ready", flush=True)
while True:
    signal.pause()
"""

# Ignores SIGTERM (a program whose shutdown hangs), says "ready", waits.
IGNORES_TERM = """
import signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    signal.pause()
"""


def start(args, ignore=(), **kw):
    """Starts sysgate with the signals in `ignore` set to SIG_IGN, as nohup or
    a shell's background job would leave them."""
    def preexec():
        for s in ignore:
            signal.signal(s, signal.SIG_IGN)
    return subprocess.Popen([SYSGATE, "run", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec, restore_signals=False, **kw)


def finish(p):
    try:
        return p.wait(timeout=TIMEOUT)
    finally:
        p.kill()
        p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                f.close()


# --- 17.1: signals ignored at start-up stay ignored ---------------------------

@pytest.mark.parametrize("ignored", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_signal_ignored_by_the_caller_does_not_end_the_run(sysgate_bin, pubdir, no_leaks,
                                                          ignored):
    # nohup sysgate run ...: a SIGHUP must change nothing. The SIGTERM sent
    # after it is what ends the run; had the ignored signal been acted on
    # (it is pending first, lower numbered), the status would be 128+ignored.
    # The command, as execve would leave it, ignores it too.
    audit = os.path.join(pubdir, "audit.jsonl")
    code = ("import signal, time\n"
            f"print([signal.getsignal(s) == signal.SIG_IGN for s in ({int(ignored)}, 15)], "
            "flush=True)\n"
            f"time.sleep({no_leaks})\n")
    p = start(["--audit", audit, "--", PY, "-c", code], ignore=[ignored])
    assert p.stdout.readline() == "[True, False]\n"
    p.send_signal(ignored)
    p.send_signal(signal.SIGTERM)
    assert finish(p) == 128 + signal.SIGTERM
    assert read_audit(audit)[-1]["signal"] == signal.SIGTERM


def test_nohup_sysgate_survives_sighup_like_the_plain_command(sysgate_bin):
    # The command waits for its stdin to close. SIGHUP is queued before the
    # stdin is closed, so a sysgate that acted on it would always see it
    # first and exit 129.
    p = subprocess.Popen(["nohup", SYSGATE, "run", "--", "sh", "-c", "echo ready; cat"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGHUP)
    p.stdin.close()
    assert finish(p) == 0


# --- 17.2: SIGPIPE as the caller had it ---------------------------------------

PIPE_SCRIPT = "yes | head -1; echo ${PIPESTATUS[0]}"


def test_sigpipe_disposition_inherited(sysgate_bin):
    # Under `trap '' PIPE`, yes sees EPIPE ("Broken pipe", status 1); without
    # it, yes dies of SIGPIPE (141). Same as the plain run either way.
    for trap in ("trap '' PIPE; ", ""):
        plain = subprocess.run(["bash", "-c", f"{trap}bash -c '{PIPE_SCRIPT}'"],
                               capture_output=True, text=True, timeout=TIMEOUT)
        sandboxed = subprocess.run(
            ["bash", "-c", f"{trap}{SYSGATE} run -- bash -c '{PIPE_SCRIPT}'"],
            capture_output=True, text=True, timeout=TIMEOUT)
        assert plain.stdout == ("y\n1\n" if trap else "y\n141\n")
        assert sandboxed.stdout == plain.stdout, (trap, sandboxed.stderr)
        assert ("Broken pipe" in sandboxed.stderr) == bool(trap)


# --- 17.3: graceful shutdown --------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_sysgate_lets_the_command_clean_up(sysgate_bin, pubdir, sig):
    audit = os.path.join(pubdir, "audit.jsonl")
    p = start(["--audit", audit, "--", PY, "-c", CLEANS_UP])
    assert p.stdout.readline() == "ready\n"
    p.send_signal(sig)
    rest = p.stdout.read()
    assert finish(p) == 128 + sig
    assert rest == f"cleanup {int(sig)}\n"  # its handler ran
    recs = read_audit(audit)
    assert recs[-1]["type"] == "sandbox_exit" and recs[-1]["signal"] == sig


def test_timeout_sends_sigterm_first(sysgate_bin, pubdir):
    # dash sets its trap within milliseconds of starting: well before 2 s.
    audit = os.path.join(pubdir, "audit.jsonl")
    script = "trap 'echo cleanup; exit 3' TERM; echo ready; while :; do sleep 0.05; done"
    r = run("--audit", audit, "--timeout", "2", "--", "sh", "-c", script)
    assert r.returncode == 124
    assert r.stdout == "ready\ncleanup\n"
    assert "--timeout" in r.stderr
    assert read_audit(audit)[-1]["reason"] == "timeout"


@pytest.mark.parametrize("how", ["signal", "timeout"])
def test_kill_after_ends_a_command_that_ignores_sigterm(sysgate_bin, no_leaks, how):
    code = IGNORES_TERM + f"# {no_leaks}\n"
    t0 = time.monotonic()
    if how == "timeout":
        r = run("--timeout", "0.3", "--kill-after", "0.5", "--", PY, "-c", code)
        assert r.returncode == 124
    else:
        p = start(["--kill-after", "0.5", "--", PY, "-c", code])
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        assert finish(p) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 20  # killed after the grace, not waited for


def test_kill_after_zero_kills_at_once(sysgate_bin):
    p = start(["--kill-after", "0", "--", PY, "-c", CLEANS_UP])
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    rest = p.stdout.read()
    assert finish(p) == 128 + signal.SIGTERM
    assert rest == ""  # no cleanup: SIGKILL


def test_children_of_the_command_get_the_signal_too(sysgate_bin, pubdir, no_leaks):
    # Like timeout(1): the command's process group. The shell's background
    # child cleans up too.
    marker = os.path.join(pubdir, "child-cleaned-up")
    # Both traps are set before "ready" is printed.
    script = (f"trap 'wait $!; exit 0' TERM; (trap 'touch {marker}; exit 0' TERM; echo ready; "
              f"while :; do sleep 0.05; done) & wait")
    p = start(["--", "bash", "-c", script])
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    assert finish(p) == 128 + signal.SIGTERM
    assert os.path.exists(marker)


@pytest.mark.parametrize("value", ["-1", "x", "1e99"])
def test_kill_after_rejects_bad_values(sysgate_bin, value):
    r = run("--kill-after", value, "--", "true")
    assert r.returncode == 125
    assert f"--kill-after {value}: not a number of seconds" in r.stderr
