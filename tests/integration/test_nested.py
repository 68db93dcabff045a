"""sysgate under sysgate (issue 12.13). The outer one denies PR_SET_DUMPABLE
and pidfd_getfd: the inner one stays dumpable (it says so) and takes its
listener over a socket pair instead; its command is confined, trapped and
audited as usual."""
import os

from conftest import PY, SYSGATE, read_audit, run

# The inner sysgate of the Sanitize build cannot run LeakSanitizer, which
# needs ptrace: the outer one denies it.
NO_LSAN = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")


def test_nested_sysgate_traps_and_audits(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "inner.jsonl")
    r = run("--", SYSGATE, "run", "--trap", "getppid", "--hostname", "inner-box", "--audit",
            audit, "--", PY, "-c", "import os; os.getppid(); print(os.uname().nodename)",
            env=NO_LSAN)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "inner-box\n"
    assert "cannot make sysgate non-dumpable" in r.stderr  # what it loses, said
    recs = read_audit(audit)
    assert any(x["type"] == "syscall" and x["syscall"] == "getppid" for x in recs)
    assert recs[-1]["type"] == "sandbox_exit"


def test_nested_command_cannot_read_the_inner_supervisor(sysgate_bin):
    # The inner supervisor is dumpable, but its command is in a nested
    # Landlock domain: no ptrace access to it, so neither /proc/PID/mem nor
    # its fds can be opened (their numbers can be listed: it is dumpable).
    r = run("--", SYSGATE, "run", "--trap", "getppid", "--", "sh", "-c",
            "head -c1 /proc/$PPID/mem >/dev/null 2>&1 && echo opened-mem;"
            "for f in /proc/$PPID/fd/*; do readlink $f >/dev/null 2>&1 && echo opened-fd; done;"
            "echo done", env=NO_LSAN)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
