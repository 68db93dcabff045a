"""Issue 12: the attacks of a hostile sandboxed program and of a hostile
worker, run with tests/attacks/sg-attack under the real sysgate, as root and
as nobody. Each asserts what the attacker observed and what its victim kept."""
import errno
import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import (BUILD, PY, SYSGATE, SYSTEM_RO, TIMEOUT, copy_for_nobody, env_with,
                      is_root, last_json)

ATTACK = os.path.join(BUILD, "tests", "attacks", "sg-attack")
EPERM, ENOSYS, EACCES = errno.EPERM, errno.ENOSYS, errno.EACCES
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all"]

# Changing another process's limits, priority, scheduling, affinity, I/O
# priority or memory placement (item 1).
OTHER_PROCESS = ["prlimit", "setpriority", "setpriority-pgrp", "setpriority-user",
                 "sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr",
                 "ioprio_set", "migrate_pages", "move_pages", "process_madvise"]
# What Landlock does not stop under --no-network (item 2).
NON_UNIX = ["mptcp", "tcp-listen", "udp", "sctp", "raw", "packet", "netlink"]


def users():
    if not is_root():
        return ["self"]
    return ["root"] + (["nobody"] if shutil.which("setpriv") else [])


@pytest.fixture(params=users())
def user(request):
    return request.param


def as_user(user, argv, **kw):
    prefix = NOBODY if user == "nobody" else []
    return subprocess.run(prefix + argv, capture_output=True, text=True, timeout=TIMEOUT, **kw)


@pytest.fixture
def bins(pubdir):
    """sysgate and sg-attack where nobody can run them."""
    d = os.path.join(pubdir, "bin")
    os.mkdir(d)
    os.chmod(d, 0o755)
    return copy_for_nobody(SYSGATE, d), copy_for_nobody(ATTACK, d)


@pytest.fixture
def victim(user):
    """A process of the attacker's user outside the sandbox, in its own
    process group."""
    p = subprocess.Popen((NOBODY if user == "nobody" else []) + ["sleep", "60"],
                         start_new_session=True)
    yield p.pid
    p.kill()
    p.wait(timeout=TIMEOUT)


def state_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        core = [l for l in f if l.startswith("Max core file size")]
    return (core, os.getpriority(os.PRIO_PROCESS, pid), os.sched_getaffinity(pid),
            os.sched_getscheduler(pid))


def test_command_cannot_change_other_processes(user, bins, victim):
    sysgate, attack = bins
    before = state_of(victim)
    r = as_user(user, [sysgate, "run", "--", attack, str(victim), *OTHER_PROCESS])
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout) == {n: EPERM for n in OTHER_PROCESS}
    assert state_of(victim) == before
    # The supervisor itself, where RLIMIT_CPU or RLIMIT_NOFILE would kill or
    # blind it.
    r = as_user(user, [sysgate, "run", "--", attack, "ppid", "prlimit", "setpriority",
                       "sched_setaffinity", "ioprio_set"])
    assert last_json(r.stdout) == dict.fromkeys(
        ["prlimit", "setpriority", "sched_setaffinity", "ioprio_set"], EPERM), r.stderr


def test_command_still_changes_itself(user, bins):
    sysgate, _ = bins
    code = ("import os, resource, threading\n"
            "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
            "os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + 1)\n"
            "os.sched_setaffinity(0, os.sched_getaffinity(0))\n"
            "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            "pid = os.fork()\n"
            "if pid == 0: os._exit(0)\n"
            "print('fork', os.waitpid(pid, 0)[1])\n")
    r = as_user(user, [sysgate, "run", "--", PY, "-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "thread\nfork 0\n"


def test_command_cannot_make_namespaces(user, bins):
    # clone3 fails with ENOSYS so libc falls back to clone (the test above
    # shows threads and fork still work).
    sysgate, attack = bins
    r = as_user(user, [sysgate, "run", "--", attack, "0", "clone-newuser", "clone3"])
    assert last_json(r.stdout) == {"clone-newuser": EPERM, "clone3": ENOSYS}, r.stderr


def mptcp_enabled():
    try:
        with open("/proc/sys/net/mptcp/enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def test_no_network_leaves_only_unix_sockets(user, bins):
    sysgate, attack = bins
    r = as_user(user, [sysgate, "run", "--no-network", "--", attack, "0", *NON_UNIX])
    assert last_json(r.stdout) == {n: EACCES for n in NON_UNIX}, r.stderr
    if mptcp_enabled():  # the attack itself works where allowed
        r = as_user(user, [sysgate, "run", "--", attack, "0", "mptcp", "tcp-listen", "udp"])
        assert last_json(r.stdout) == {"mptcp": 0, "tcp-listen": 0, "udp": 0}, r.stderr


@pytest.fixture
def unix_server(pubdir):
    """A listening pathname unix socket anyone may connect to, in a
    directory of its own."""
    d = os.path.join(pubdir, "srv")
    os.mkdir(d)
    os.chmod(d, 0o755)
    path = os.path.join(d, "s.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(64)
    yield path
    s.close()


def test_unix_socket_outside_granted_paths(user, bins, unix_server, pubdir):
    sysgate, attack = bins
    bindir = os.path.dirname(attack)
    srvdir = os.path.dirname(unix_server)
    link = os.path.join(bindir, "link.sock")
    os.symlink(unix_server, link)

    def connect(*opts, target=unix_server, cwd=None):
        r = as_user(user, [sysgate, "run", *opts, "--", attack, "0", "unix:" + target],
                    cwd=cwd)
        assert r.returncode == 0, r.stderr
        return last_json(r.stdout)["unix:" + target]

    ro = SYSTEM_RO + ["-r", bindir]
    assert connect(*ro) == EACCES
    assert connect(*ro, target=link) == EACCES  # a symlink beneath a granted path
    assert connect(*ro, target="s.sock", cwd=srvdir) == EACCES  # relative to the cwd
    assert connect("--no-network") == EACCES
    assert connect(*ro, "--allow-unix", unix_server) == 0
    assert connect(*ro, "--allow-unix", unix_server, target=link) == 0
    assert connect(*ro, "-r", srvdir) == 0
    assert connect("--no-network", "--allow-unix", unix_server) == 0
    assert connect() == 0  # no -r/-w, no --no-network: unrestricted


def test_allow_unix_needs_an_existing_directory(sysgate_bin):
    r = subprocess.run([SYSGATE, "run", "--no-network", "--allow-unix", "/nonexistent/s.sock",
                        "--", "true"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 125
    assert "--allow-unix /nonexistent/s.sock" in r.stderr


def attack_report(stderr):
    lines = [l for l in stderr.splitlines() if "sg-attack {" in l]
    assert len(lines) == 1, stderr
    return json.loads(lines[0].split("sg-attack ", 1)[1])


def test_hostile_worker_cannot_touch_other_processes(user, bins, victim, rundir_base,
                                                     no_leaks):
    # Its victim stands for a sibling worker (same uid), then the
    # supervisor (RLIMIT_CPU on an unprivileged one kills it). A child it
    # forks dies with it.
    sysgate, attack = bins
    os.chmod(rundir_base, 0o1777)  # sysgate as nobody makes its runtime directory there
    before = state_of(victim)
    worker = " ".join([attack, "--worker", str(victim), *OTHER_PROCESS, "clone-newuser",
                       "clone3", "mptcp", "udp", "fork-child", "#" + no_leaks])
    r = as_user(user, [sysgate, "run", "--worker", worker, "--", PY, "-c",
                       "import os; os.getppid()"], env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert attack_report(r.stderr) == dict(
        {n: EPERM for n in OTHER_PROCESS}, **{"clone-newuser": EPERM, "clone3": ENOSYS,
                                              "mptcp": EACCES, "udp": EACCES,
                                              "fork-child": 0})
    assert state_of(victim) == before

    worker = f"{attack} --worker ppid prlimit setpriority sched_setaffinity"
    r = as_user(user, [sysgate, "run", "--worker", worker, "--", "true"],
                env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert attack_report(r.stderr) == dict.fromkeys(
        ["prlimit", "setpriority", "sched_setaffinity"], EPERM)
