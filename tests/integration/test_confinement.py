"""Landlock filesystem and network rules, and the kernel deny list."""
import os
import socket
import subprocess

import pytest

from conftest import PY, SYSTEM_RO, run, write_script


def test_read_allowed_beneath_read_path(sysgate_bin, pubdir):
    write_script(pubdir, "data.txt", "secret-ok\n")
    r = run(*SYSTEM_RO, "-r", pubdir, "--", "cat", os.path.join(pubdir, "data.txt"))
    assert r.returncode == 0 and r.stdout == "secret-ok\n"


def test_read_denied_outside_read_paths(sysgate_bin, pubdir):
    write_script(pubdir, "data.txt", "secret\n")
    r = run(*SYSTEM_RO, "--", "cat", os.path.join(pubdir, "data.txt"))
    assert r.returncode == 1
    assert "Permission denied" in r.stderr and "secret" not in r.stdout


def test_write_allowed_beneath_write_path_only(sysgate_bin, pubdir):
    rw = os.path.join(pubdir, "rw")
    ro = os.path.join(pubdir, "ro")
    os.mkdir(rw)
    os.mkdir(ro)
    script = (f"echo a > {rw}/new && cat {rw}/new && mkdir {rw}/d && rm {rw}/new || exit 9;"
              f"echo b > {ro}/new; echo status=$?")
    r = run(*SYSTEM_RO, "-w", rw, "-r", ro, "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["a", "status=2"]
    assert "Permission denied" in r.stderr
    assert os.path.isdir(os.path.join(rw, "d"))
    assert not os.path.exists(os.path.join(ro, "new"))


def test_no_rules_means_filesystem_unrestricted(sysgate_bin, pubdir):
    path = os.path.join(pubdir, "free.txt")
    r = run("--", "sh", "-c", f"echo free > {path}")
    assert r.returncode == 0
    assert open(path).read() == "free\n"


def test_a_rule_on_a_single_file(sysgate_bin, pubdir):
    write_script(pubdir, "one.txt", "one\n")
    write_script(pubdir, "two.txt", "two\n")
    r = run(*SYSTEM_RO, "-r", os.path.join(pubdir, "one.txt"), "--", "sh", "-c",
            f"cat {pubdir}/one.txt; cat {pubdir}/two.txt")
    assert r.stdout == "one\n" and "Permission denied" in r.stderr


@pytest.fixture
def tcp_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


CONNECT = """
import socket, sys
try:
    s = socket.socket()  # --no-network refuses the socket itself
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print("errno", e.errno)
try:
    b = socket.socket()
    b.bind(("127.0.0.1", 0))
    print("bound")
except OSError as e:
    print("errno", e.errno)
"""


def test_network_allowed_by_default(sysgate_bin, tcp_server):
    r = run("--", PY, "-c", CONNECT, str(tcp_server))
    assert r.stdout.split("\n")[:2] == ["connected", "bound"]


def test_no_network_denies_tcp_connect_and_bind(sysgate_bin, tcp_server):
    r = run("--no-network", "--", PY, "-c", CONNECT, str(tcp_server))
    assert r.stdout.split("\n")[:2] == ["errno 13", "errno 13"], r.stdout + r.stderr


SYSCALL_ERRNO = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
nrs = {"mount": 165, "unshare": 272, "ptrace": 101, "personality": 135, "bpf": 321,
       "keyctl": 250, "userfaultfd": 323, "io_uring_setup": 425, "kexec_load": 246,
       "init_module": 175, "setns": 308, "process_vm_readv": 310, "swapon": 167,
       "reboot": 169, "sethostname": 170, "pivot_root": 155, "getpid": 39,
       "getppid": 110, "pidfd_getfd": 438, "kcmp": 312}
for name in sys.argv[1:]:
    ctypes.set_errno(0)
    r = libc.syscall(nrs[name], 0, 0, 0, 0, 0, 0)
    print(name, r, ctypes.get_errno() if r == -1 else 0)
"""

DENIED = ["mount", "unshare", "ptrace", "personality", "bpf", "keyctl", "userfaultfd",
          "io_uring_setup", "kexec_load", "init_module", "setns", "process_vm_readv",
          "swapon", "reboot", "sethostname", "pivot_root", "pidfd_getfd", "kcmp"]


def test_default_deny_list_answers_eperm(sysgate_bin):
    r = run("--", PY, "-c", SYSCALL_ERRNO, *DENIED)
    assert r.returncode == 0, r.stderr
    seen = {line.split()[0]: int(line.split()[2]) for line in r.stdout.splitlines()}
    assert seen == {name: 1 for name in DENIED}  # EPERM


def test_deny_syscall_adds_to_the_list(sysgate_bin):
    r = run("--", PY, "-c", SYSCALL_ERRNO, "getppid")
    assert r.stdout.split()[2] == "0"
    r = run("--deny-syscall", "getppid", "--deny-syscall", "39", "--", PY, "-c",
            SYSCALL_ERRNO, "getppid", "getpid")
    assert r.stdout.splitlines() == ["getppid -1 1", "getpid -1 1"]


def test_foreign_abi_syscalls_kill_the_process(sysgate_bin, pubdir):
    # int 0x80 is the i386 ABI: its numbers would bypass an x86-64 table.
    src = os.path.join(pubdir, "i386.c")
    exe = os.path.join(pubdir, "i386")
    with open(src, "w") as f:
        f.write("int main(void){ int r; __asm__ volatile(\"int $0x80\" : \"=a\"(r)"
                " : \"a\"(20)); return r > 0 ? 0 : 1; }\n")
    import subprocess
    if subprocess.run(["cc", "-o", exe, src], capture_output=True, timeout=60).returncode:
        pytest.skip("no C compiler")
    plain = subprocess.run([exe], timeout=10).returncode
    if plain == -11:
        # With IA32 emulation off at run time, int 0x80 faults before seccomp sees it.
        pytest.skip("this kernel does not run i386 syscalls (int 0x80 raises SIGSEGV)")
    assert plain == 0  # getpid via i386 works
    assert run("--", exe).returncode == 128 + 31  # SIGSYS


ARGUMENT_DENIALS = """
import ctypes, termios
libc = ctypes.CDLL(None, use_errno=True)
def call(name, r):
    print(name, r, ctypes.get_errno() if r == -1 else 0)
    ctypes.set_errno(0)
call("tiocsti", libc.ioctl(0, termios.TIOCSTI, ctypes.c_char_p(b"x")))
call("tiocsti-high-bits", libc.ioctl(0, ctypes.c_ulong(termios.TIOCSTI | (1 << 32)),
                                     ctypes.c_char_p(b"x")))
call("set-dumpable", libc.prctl(4, 0, 0, 0, 0))
call("get-dumpable", libc.prctl(3, 0, 0, 0, 0))
"""


@pytest.mark.parametrize("traps", [[], ["--trap", "ioctl", "--trap", "prctl"]])
def test_terminal_injection_and_undumpable_are_denied(sysgate_bin, traps):
    # TIOCSTI would type commands into the user's shell; a non-dumpable
    # command would blind the supervisor. Trapping the syscall must not
    # reopen either: the deny filter outranks the notify filter.
    r = run(*traps, "--", PY, "-c", ARGUMENT_DENIALS, stdin=subprocess.DEVNULL)
    assert r.stdout.splitlines() == ["tiocsti -1 1", "tiocsti-high-bits -1 1",
                                     "set-dumpable -1 1", "get-dumpable 1 0"], r.stderr


def test_command_cannot_open_the_supervisors_memory(sysgate_bin):
    r = run("--", "sh", "-c", "head -c1 /proc/$PPID/mem >/dev/null && echo opened")
    assert r.stdout == "" and "Permission denied" in r.stderr


def test_denying_signal_calls_does_not_break_start_up(sysgate_bin):
    # The command's signal mask is restored before the filter exists.
    r = run("--deny-syscall", "rt_sigprocmask", "--deny-syscall", "rt_sigaction", "--",
            "/bin/echo", "started")
    assert r.returncode == 0 and r.stdout == "started\n", r.stderr
