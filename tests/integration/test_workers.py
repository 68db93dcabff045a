"""Handler workers end to end (docs/handlers.md, docs/worker-sandbox.md): real programs under the real
supervisor with real worker processes, asserting what the program observed
(its output, the errno it saw, its exit status) and what the workers saw."""
import json
import os
import re
import subprocess
import tempfile

import pytest

from conftest import (BUILD, GETPPID, PY, SYSCALL_ERRNOS, SYSGATE, TIMEOUT, UNTIL_OK,
                      assert_workers_gone, copy_for_nobody, env_with, is_root, last_json,
                      read_audit, run, run_as_nobody, syscalls)

EXAMPLES = os.path.join(BUILD, "examples")
AUDIT_WORKER = os.path.join(EXAMPLES, "sysgate-audit-worker")
DENY_WORKER = os.path.join(EXAMPLES, "sysgate-path-deny-worker")
FAKER = os.path.join(EXAMPLES, "sysgate-getpid-faker")
PLUGIN_HOST = os.path.join(BUILD, "worker", "sysgate-worker")
PLUGIN = os.path.join(EXAMPLES, "audit-plugin.so")
MISBEHAVE = os.path.join(BUILD, "tests", "workers", "sg-misbehave")
PROBE = os.path.join(BUILD, "tests", "workers", "sg-probe")

EPERM, EIO, EACCES = 1, 5, 13


def errnos(r):
    """The errnos SYSCALL_ERRNOS printed (0: the call succeeded)."""
    return last_json(r.stdout)


# --- what the audit worker sees vs a reference trace -----------------------

TRACED = ("openat", "open", "creat", "execve")


def strace_paths(argv, env):
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as f:
        subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "signal=none",
                        "-e", "trace=" + ",".join(TRACED), "-o", f.name, *argv],
                       capture_output=True, timeout=TIMEOUT, env=env, check=True)
        out = []
        for line in f.read().splitlines():
            # [pid] name(["dirfd", ]"path", ...; resumed halves carry no path.
            m = re.match(r'^(?:\d+\s+)?(openat|open|creat|execve)\((?:[A-Z_]+|-?\d+, )?'
                         r'(?:, )?"([^"]*)"', line)
            if m:
                out.append((m.group(1), m.group(2)))
        return sorted(out)


def worker_paths(stderr):
    out = []
    for line in stderr.splitlines():
        m = re.match(r"^audit: \d+ (\S+) (.*)$", line)
        if m and m.group(1) in TRACED:
            out.append((m.group(1), m.group(2)))
    return sorted(out)


@pytest.mark.parametrize("argv", [
    ["/usr/bin/cat", "/etc/hostname"],
    ["/usr/bin/ls", "/etc/ssl"],
    ["/bin/sh", "-c", "cat /etc/hostname >/dev/null; ls /etc/ssl >/dev/null"],
    [PY, "-c", "import json"],
], ids=["cat", "ls", "sh", "python-import-json"])
def test_audit_worker_sees_exactly_what_strace_sees(sysgate_bin, argv, rundir_base):
    env = env_with(rundir_base)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    r = run("--worker", AUDIT_WORKER, "--", *argv, env=env)
    assert r.returncode == 0, r.stderr
    seen = worker_paths(r.stderr)
    assert seen, r.stderr
    assert seen == strace_paths(argv, env)


def test_audit_worker_reports_the_file_cat_prints(sysgate_bin, rundir_base):
    r = run("--worker", AUDIT_WORKER, "--", "cat", "/etc/hostname", env=env_with(rundir_base))
    assert r.returncode == 0
    with open("/etc/hostname") as f:
        assert r.stdout == f.read()
    assert ("openat", "/etc/hostname") in worker_paths(r.stderr)


def test_plugin_in_sysgate_worker_audits_like_the_worker(sysgate_bin, rundir_base, pubdir):
    # The plugin is loaded by the worker, as the unprivileged worker user:
    # keep it where that user can read it.
    host = copy_for_nobody(PLUGIN_HOST, pubdir)
    plugin = copy_for_nobody(PLUGIN, pubdir)
    r = run("--worker", f"{host} --plugin {plugin}", "--", "cat", "/etc/hostname",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert ("openat", "/etc/hostname") in worker_paths(r.stderr)
    assert ("execve", "/usr/bin/cat") in worker_paths(r.stderr)


# --- actions ----------------------------------------------------------------

def test_path_deny_worker_fails_the_open_with_eperm(sysgate_bin, rundir_base):
    r = run("--worker", f"{DENY_WORKER} /etc/host*", "--", "cat", "/etc/hostname", "/etc/passwd",
            env=env_with(rundir_base))
    assert r.returncode == 1
    assert "cat: /etc/hostname: Operation not permitted" in r.stderr
    assert "root:" in r.stdout  # /etc/passwd does not match: it was read


def test_getpid_faker_changes_what_getpid_returns(sysgate_bin, rundir_base):
    r = run("--worker", f"{FAKER} 4242", "--", PY, "-c", "import os; print(os.getpid())",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "4242\n"


def test_builtin_answer_hides_the_syscall_from_workers(sysgate_bin, rundir_base):
    code = "import os; print(os.uname().nodename)"
    # Alone, the worker fails uname with EACCES...
    r = run("--worker", f"{MISBEHAVE} --syscall uname errno", "--", PY, "-c", code,
            env=env_with(rundir_base))
    assert r.returncode == 1 and "PermissionError" in r.stderr
    # ...but the builtin answers first and the worker never gets a snapshot.
    r = run("--hostname", "box", "--worker", f"{MISBEHAVE} --syscall uname errno", "--", PY,
            "-c", code, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "box\n"
    assert "sg-misbehave: errno" not in r.stderr


@pytest.mark.parametrize("order,expected", [((111, 222), "111"), ((222, 111), "222")])
def test_two_workers_chain_in_command_line_order(sysgate_bin, rundir_base, order, expected):
    a, b = order
    r = run("--worker", f"{FAKER} {a}", "--worker", f"{FAKER} {b}", "--", PY, "-c",
            "import os; print(os.getpid())", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected


def test_continue_hands_on_to_the_next_worker(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{MISBEHAVE} --syscall getpid ok", "--worker",
            f"{FAKER} 333", "--", PY, "-c", "import os; print(os.getpid())",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "333\n"
    recs = syscalls(read_audit(audit), "getpid")
    assert recs and all(x["decided_by"] == "sysgate-getpid-faker" and x["action"] == "return"
                        and x["value"] == 333 for x in recs), recs


# --- registration --------------------------------------------------------------

@pytest.mark.parametrize("register,named", [
    ("mount", '"mount"'), ("ptrace", '"ptrace"'), ("nosuchcall", '"nosuchcall"'),
    ("-5", "-5"), ("99999", "99999"), ("exit", '"exit"'), ("exit_group", '"exit_group"'),
])
def test_rejected_registration_stops_before_the_child_starts(sysgate_bin, rundir_base,
                                                             register, named):
    r = run("--worker", f"{MISBEHAVE} --register {register} register", "--", "sh", "-c",
            "echo the child ran", env=env_with(rundir_base))
    assert r.returncode == 125
    assert r.stdout == ""
    line = [l for l in r.stderr.splitlines() if l.startswith("sysgate: --worker")]
    assert len(line) == 1, r.stderr
    assert "sg-misbehave" in line[0] and named in line[0] and "rejected" in line[0]


def test_registration_on_a_deny_syscall_option_is_rejected(sysgate_bin, rundir_base):
    r = run("--deny-syscall", "getppid", "--worker", f"{MISBEHAVE} ok", "--", "true",
            env=env_with(rundir_base))
    assert r.returncode == 125
    assert '"getppid" rejected' in r.stderr and "deny list" in r.stderr


def test_worker_not_found(sysgate_bin, rundir_base):
    r = run("--worker", "/nonexistent/worker --x", "--", "true", env=env_with(rundir_base))
    assert r.returncode == 125
    assert "--worker '/nonexistent/worker --x'" in r.stderr and "not found" in r.stderr


def test_worker_that_exits_at_start_is_named_with_its_output(sysgate_bin, rundir_base):
    r = run("--worker", f"{PY} -c import,sys;sys.exit('boom-7319')", "--", "sh", "-c",
            "echo the child ran", env=env_with(rundir_base))
    assert r.returncode == 125
    assert r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert "exited with status 1" in last and "boom-7319" in last, r.stderr


def test_worker_that_never_registers_times_out(sysgate_bin, rundir_base):
    r = run("--worker-start-timeout", "300", "--worker", "/bin/sleep 30", "--", "true",
            env=env_with(rundir_base), timeout=20)
    assert r.returncode == 125
    assert "--worker '/bin/sleep 30': did not register within 300 ms" in r.stderr


# --- failures and exception policies ------------------------------------------

FAILURES = {
    "segv": "killed by SIGSEGV",
    "abort": "killed by SIGABRT",
    "exit": "exited with status 3",
    "hang": "did not answer getppid within --handler-timeout 300 ms",
    "wrongseq": "which it does not hold",
    "garbage": "malformed message",
    "noaction": "no action kind",
    "wrongversion": "protocol version 99",
    "fail": "handler for getppid failed: test failure",
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_failure_kind_gets_the_policy_and_is_logged_and_audited(sysgate_bin, rundir_base,
                                                                 tmp_path, kind):
    audit = tmp_path / "a.jsonl"
    r = run("--handler-timeout", "300", "--audit", str(audit), "--worker",
            f"{MISBEHAVE} --policy eperm {kind}", "--", PY, "-c", SYSCALL_ERRNOS, str(GETPPID),
            "1", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert errnos(r) == [EPERM]
    assert FAILURES[kind] in r.stderr
    recs = read_audit(audit)
    call = syscalls(recs, "getppid")
    assert call and call[0]["exception"] == "DENY_EPERM" and call[0]["errno"] == EPERM
    if kind == "fail":
        assert any(x["type"] == "handler_failed" for x in recs)
    else:
        failed = [x for x in recs if x["type"] == "worker_failed"]
        assert failed and failed[0]["restart"] is True, recs


def test_answering_twice_is_a_violation(sysgate_bin, rundir_base):
    r = run("--worker", f"{MISBEHAVE} --policy eperm twice", "--", PY, "-c", SYSCALL_ERRNOS,
            str(GETPPID), "1", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert errnos(r) == [0]  # the first answer counted
    assert "answered notification 1, which it does not hold" in r.stderr


@pytest.mark.parametrize("policy,observed", [("eperm", EPERM), ("eio", EIO), ("continue", 0)])
def test_policy_decides_what_the_program_sees(sysgate_bin, rundir_base, policy, observed):
    r = run("--worker", f"{MISBEHAVE} --policy {policy} segv", "--", PY, "-c", SYSCALL_ERRNOS,
            str(GETPPID), "1", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert errnos(r) == [observed]


def test_kill_policy_kills_the_sandbox(sysgate_bin, rundir_base, no_leaks):
    script = ("import subprocess, sys\n"
              f"subprocess.Popen(['sleep', '{no_leaks}'])\n"
              + SYSCALL_ERRNOS)
    r = run("--worker", f"{MISBEHAVE} --policy kill segv", "--", PY, "-c", script,
            str(GETPPID), "1", env=env_with(rundir_base))
    assert r.returncode == 128 + 9
    assert r.stdout == ""
    assert "killing the sandbox (exception policy KILL)" in r.stderr


def test_crashed_worker_is_restarted_and_serves_again(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{MISBEHAVE} --once --policy eperm segv", "--",
            PY, "-c", UNTIL_OK, str(GETPPID), "20", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{EPERM} 0\n"
    types = [x["type"] for x in read_audit(audit)]
    assert "worker_failed" in types and "worker_restart" in types and "worker_restarted" in types


def test_worker_out_of_restarts_answers_with_its_policy(sysgate_bin, rundir_base):
    # Crashes on every start: 5 restarts, then its registrations keep
    # answering EPERM and the program still finishes.
    r = run("--worker", f"{MISBEHAVE} --policy eperm segv", "--", PY, "-c", UNTIL_OK,
            str(GETPPID), "4", env=env_with(rundir_base), timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{EPERM} {EPERM}\n"
    assert "out of restarts" in r.stderr


def test_other_workers_keep_serving_when_one_crashes(sysgate_bin, rundir_base):
    code = SYSCALL_ERRNOS + "import os\nprint(os.getpid())\n"
    r = run("--worker", f"{MISBEHAVE} --policy eperm segv", "--worker", f"{FAKER} 4242", "--",
            PY, "-c", code, str(GETPPID), "1", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == [f"[{EPERM}]", "4242"]


def test_workers_are_gone_after_the_run(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{FAKER} 1", "--worker", AUDIT_WORKER, "--",
            "true", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert len([x for x in read_audit(audit) if x["type"] == "worker_start"]) == 2
    assert_workers_gone(audit)


# --- concurrency ------------------------------------------------------------------

def test_multithreaded_child_with_concurrent_trapped_syscalls(sysgate_bin, rundir_base):
    code = ("import os, threading\n"
            "bad = []\n"
            "def work():\n"
            "    for _ in range(300):\n"
            "        if os.getpid() != 4242: bad.append(1)\n"
            "ts = [threading.Thread(target=work) for _ in range(8)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print('bad', len(bad))\n")
    r = run("--worker", f"{FAKER} 4242", "--", PY, "-c", code, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bad 0\n"


# --- the worker's own sandbox (docs/worker-sandbox.md), seen from inside a real worker -------------

def probe(rundir_base, extra=()):
    r = run(*extra, "--worker", PROBE, "--", PY, "-c", "import os; os.getppid()",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("{")]
    assert len(lines) == 1, r.stderr
    return json.loads(lines[0])


def test_worker_cannot_reach_the_child_or_the_network(sysgate_bin, rundir_base):
    p = probe(rundir_base)
    assert p["proc_mem"] != 0 and p["proc_status"] != 0
    assert p["process_vm_readv"] == EPERM
    assert p["ptrace"] == EPERM
    assert p["pidfd_getfd"] != 0
    assert p["kill"] == EPERM and p["kill0"] == EPERM
    assert p["write_tmp"] == EACCES and p["write_cwd"] != 0
    assert p["tcp"] == EACCES
    assert p["read_etc_passwd"] == 0  # the system's files stay readable


@pytest.mark.skipif(not is_root(), reason="needs root to switch users")
def test_worker_runs_as_worker_user_under_root(sysgate_bin, rundir_base):
    import pwd
    own = 0x7F5E0000  # --worker-uid-base's default: the first --worker's own uid
    p = probe(rundir_base)
    assert (p["uid"], p["euid"], p["gid"]) == (own, own, own)
    nobody = pwd.getpwnam("nobody")
    p = probe(rundir_base, ["--worker-user", "nobody"])
    assert (p["uid"], p["euid"], p["gid"]) == (nobody.pw_uid, nobody.pw_uid, nobody.pw_gid)
    daemon = pwd.getpwnam("daemon")
    p = probe(rundir_base, ["--worker-user", "daemon"])
    assert p["uid"] == daemon.pw_uid


@pytest.mark.skipif(not is_root(), reason="needs root for setpriv")
def test_workers_without_root(sysgate_bin, pubdir):
    """sysgate run by nobody starts its workers as nobody."""
    sg = copy_for_nobody(SYSGATE, pubdir)
    faker = copy_for_nobody(FAKER, pubdir)
    r, tmp = run_as_nobody(sg, pubdir, "--worker", f"{faker} 99", "--", PY, "-c",
                           "import os; print(os.getpid(), os.getuid())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "99"
    assert os.listdir(tmp) == []


def test_queue_bound_per_worker_overflows_into_the_policy(sysgate_bin, rundir_base):
    """70 threads block in getppid on a worker that never answers: 64 are
    pending with it (the per-worker bound), the other 6 get the policy at once;
    the 64 get it when --handler-timeout expires."""
    code = ("import ctypes, threading, time\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "res = []\n"
            "def call():\n"
            "    t = time.monotonic(); r = libc.syscall(110)\n"
            "    res.append((r, ctypes.get_errno(), time.monotonic() - t))\n"
            "ts = [threading.Thread(target=call) for _ in range(70)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print(sorted(set((r, e) for r, e, _ in res)), sum(d < 1.0 for _, _, d in res))\n")
    r = run("-v", "--handler-timeout", "1500", "--worker", f"{MISBEHAVE} --policy eperm hang",
            "--", PY, "-c", code, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"[(-1, {EPERM})] 6\n"
    assert r.stderr.count("has too many notifications pending") == 6


def test_records_a_worker_emits_land_in_the_audit_log(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{MISBEHAVE} --syscall getppid record", "--",
            PY, "-c", SYSCALL_ERRNOS, str(GETPPID), "2", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert errnos(r) == [0, 0]
    recs = [x for x in read_audit(audit) if x["type"] == "record"]
    assert [x["data"] for x in recs] == [{"seq": 1}, {"seq": 2}]
    assert all(x["worker"] == "sg-misbehave" for x in recs)


def test_a_record_that_is_not_json_is_a_violation(sysgate_bin, rundir_base):
    r = run("--worker", f"{MISBEHAVE} --policy eperm --syscall getppid badrecord", "--", PY,
            "-c", SYSCALL_ERRNOS, str(GETPPID), "1", env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert errnos(r) == [EPERM]
    assert "sent a Record that is not JSON" in r.stderr


# --- observe-or-deny syscalls (execve, clone, fork ...) ------------------------------

EXECV = ("import os\n"
         "try: os.execv('/bin/true', ['true'])\n"
         "except OSError as e: print('execve', e.errno)\n")
FORK = ("import os\n"
        "try:\n"
        "    pid = os.fork()\n"
        "    if pid == 0: os._exit(0)\n"
        "    os.waitpid(pid, 0); print('forked')\n"
        "except OSError as e: print('fork', e.errno)\n")


# --after 1 for execve: the command's own execve by sysgate is let through.
@pytest.mark.parametrize("syscall,after,code,seen", [
    ("execve", 1, EXECV, f"execve {EPERM}\n"),  # a faked exec: refused, the policy answers
    ("clone", 0, FORK, f"fork {EPERM}\n"),      # a faked child pid: refused
])
def test_return_on_an_observe_or_deny_syscall_gets_the_policy(sysgate_bin, rundir_base,
                                                              syscall, after, code, seen):
    r = run("--worker", f"{MISBEHAVE} --after {after} --policy eperm --syscall {syscall} return",
            "--", PY, "-c", code, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == seen
    assert f"answered {syscall} with return: only continue, errno or kill" in r.stderr


@pytest.mark.parametrize("syscall,after,code,seen", [
    ("execve", 1, EXECV, f"execve {EACCES}\n"),
    ("clone", 0, FORK, f"fork {EACCES}\n"),
])
def test_errno_on_an_observe_or_deny_syscall_is_served(sysgate_bin, rundir_base, syscall, after,
                                                       code, seen):
    r = run("--worker", f"{MISBEHAVE} --after {after} --syscall {syscall} errno", "--", PY, "-c",
            code, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert r.stdout == seen


# --- the kill action ---------------------------------------------------------------------

KILL_CHILD = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
pid = os.fork()
if pid == 0:
    libc.syscall(121, 0)          # getpgid: the worker answers kill(SIGTERM)
    os._exit(7)                   # not reached
_, status = os.waitpid(pid, 0)
print("child", "signal" if os.WIFSIGNALED(status) else "exit",
      os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
ctypes.set_errno(0)
r = libc.syscall(121, 0)          # the same worker answers the next one: continue
print("parent", r >= 0, ctypes.get_errno(), flush=True)
"""


def test_kill_signals_only_the_trapped_process(sysgate_bin, rundir_base, tmp_path):
    audit = tmp_path / "a.jsonl"
    r = run("--audit", str(audit), "--worker", f"{MISBEHAVE} --syscall getpgid kill", "--",
            PY, "-c", KILL_CHILD, env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr  # the program (the parent) survived
    assert r.stdout == "child signal 15\nparent True 0\n"
    recs = syscalls(read_audit(audit), "getpgid")
    assert [x["action"] for x in recs] == ["kill", "continue"]
    assert recs[0]["signal"] == 15
    assert not [x for x in read_audit(audit) if x["type"] == "worker_failed"]


def test_kill_from_a_thread_ends_its_whole_process(sysgate_bin, rundir_base):
    code = ("import ctypes, threading, time\n"
            "libc = ctypes.CDLL(None)\n"
            "t = threading.Thread(target=lambda: libc.syscall(121, 0)); t.start()\n"
            "time.sleep(30); print('survived')\n")
    r = run("--worker", f"{MISBEHAVE} --syscall getpgid kill", "--", PY, "-c", code,
            env=env_with(rundir_base), timeout=20)
    assert r.returncode == 128 + 15
    assert r.stdout == ""


def test_what_a_worker_forks_ends_with_it(sysgate_bin, rundir_base, no_leaks):
    """A worker's children are in its process group, which sysgate kills
    with it (and which the worker cannot leave: setsid and setpgid are
    denied to it); sysgate does not wait for them to let go of the output
    pipe."""
    import time
    t0 = time.monotonic()
    r = run("--worker", f"{MISBEHAVE} --fork-child {no_leaks} ok", "--", "true",
            env=env_with(rundir_base))
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 1.5


def test_worker_cannot_leave_its_process_group(sysgate_bin, rundir_base):
    p = probe(rundir_base)
    assert p.get("setsid") == EPERM, p
