"""An interactive command owns the terminal, and Ctrl-Z stops and resumes it."""
import os
import pty
import select
import signal
import time

from conftest import SYSGATE


def read_until(fd, needle, timeout=20):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}, got {buf!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def wait_status(pid, flags, timeout=20):
    """waitpid with a bound: polls, so a sysgate that never stops fails the
    test instead of hanging it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, flags | os.WNOHANG)
        if got == pid:
            return status
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} did not change state in {timeout} s")


def spawn_on_pty(*args):
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(SYSGATE, [SYSGATE, "run", *args])
        finally:
            os._exit(127)
    return pid, fd


def test_command_reads_the_terminal_and_ctrl_z_round_trips(sysgate_bin):
    # The command reads the terminal (it must be in the foreground group or
    # it would be stopped by SIGTTIN), is stopped by Ctrl-Z with sysgate,
    # and carries on when sysgate is continued.
    pid, fd = spawn_on_pty("--", "sh", "-c",
                           "echo ready; read a; echo got-$a; read b; echo got-$b")
    try:
        read_until(fd, b"ready")
        os.write(fd, b"one\n")
        read_until(fd, b"got-one")
        os.write(fd, b"\x1a")  # Ctrl-Z: SIGTSTP to the foreground group
        status = wait_status(pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "sysgate did not stop with its command"
        os.kill(pid, signal.SIGCONT)  # what a shell's fg does
        os.write(fd, b"two\n")
        read_until(fd, b"got-two")
        status = wait_status(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
