"""Exit status and error mapping (docs/cli.md#exit-status)."""
import os

import pytest

from conftest import PY, SYSTEM_RO, run, write_script


@pytest.mark.parametrize("cmd,status", [
    (["/bin/true"], 0),
    (["/bin/false"], 1),
    (["sh", "-c", "exit 3"], 3),
    (["sh", "-c", "kill -TERM $$"], 128 + 15),
    (["sh", "-c", "kill -KILL $$"], 128 + 9),
    (["sh", "-c", "exit 255"], 255),
])
def test_command_status_is_passed_through(sysgate_bin, cmd, status):
    assert run("--", *cmd).returncode == status


def test_command_not_found_is_127(sysgate_bin):
    r = run("--", "sysgate-no-such-command")
    assert r.returncode == 127
    assert "sysgate-no-such-command" in r.stderr and "not found" in r.stderr
    r = run("--", "/nonexistent/dir/prog")
    assert r.returncode == 127


def test_not_executable_is_126(sysgate_bin, pubdir):
    path = write_script(pubdir, "noexec.sh", "#!/bin/sh\necho hi\n", mode=0o644)
    r = run("--", path)
    assert r.returncode == 126
    assert "noexec.sh" in r.stderr
    assert run("--", pubdir).returncode == 126  # a directory


def test_exec_refused_inside_the_sandbox_is_126(sysgate_bin, pubdir):
    # The file is executable, but Landlock gives no execute right on it.
    path = write_script(pubdir, "ok.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    r = run("-r", "/etc", "--", path)
    assert r.returncode == 126
    assert "cannot execute" in r.stderr and "ok.sh" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--bogus", "--", "true"], "--bogus"),
    (["--max-procs", "0", "--", "true"], "--max-procs"),
    (["--max-procs", "many", "--", "true"], "--max-procs"),
    (["--timeout", "-1", "--", "true"], "--timeout"),
    (["--timeout"], "--timeout"),
    (["--trap", "nosuchcall", "--", "true"], "nosuchcall"),
    (["--deny-syscall", "-5", "--", "true"], "--deny-syscall"),
    (["--trap", "mount", "--", "true"], "mount"),
    (["--hostname", "x" * 65, "--", "true"], "--hostname"),
    (["--deny-syscall", "uname", "--hostname", "h", "--", "true"], "uname"),
    (["-r", "/nonexistent-sysgate-path", "--", "true"], "/nonexistent-sysgate-path"),
    (["--audit", "/nonexistent-dir/audit.jsonl", "--", "true"], "/nonexistent-dir"),
    (["--worker", "/bin/true", "--", "true"], "--worker"),
    ([], "no command"),
])
def test_own_errors_are_125_with_one_line_naming_the_cause(sysgate_bin, args, needle):
    r = run(*args)
    assert r.returncode == 125, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert lines[0].startswith("sysgate: ")


def test_help_and_version(sysgate_bin):
    import subprocess
    for args in (["--help"], ["run", "--help"]):
        r = subprocess.run([sysgate_bin, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "--max-procs" in r.stdout
    r = subprocess.run([sysgate_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("sysgate ")
    r = subprocess.run([sysgate_bin, "frobnicate"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 125 and "frobnicate" in r.stderr


def test_stdio_and_arguments_pass_through(sysgate_bin):
    r = run("--", "sh", "-c", 'read x; echo "got:$x:$1"', "sh", "arg with space",
            input="line\n")
    assert r.returncode == 0
    assert r.stdout == "got:line:arg with space\n"


def test_environment_passes_through(sysgate_bin):
    env = dict(os.environ, SYSGATE_TEST_VAR="value-42")
    r = run("--", PY, "-c", "import os; print(os.environ['SYSGATE_TEST_VAR'])", env=env)
    assert r.stdout == "value-42\n"


def test_sysgate_fds_do_not_leak_into_the_command(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "a.jsonl")
    r = run("--audit", audit, "--trap", "getppid", "--", "ls", "/proc/self/fd")
    fds = sorted(int(x) for x in r.stdout.split())
    # 0, 1, 2 and the one ls opened to list the directory.
    assert len(fds) == 4 and fds[:3] == [0, 1, 2], r.stdout
