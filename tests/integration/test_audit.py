"""The audit log: JSON Lines matching what the program did."""
import os

from conftest import PY, SYSTEM_RO, read_audit, run, syscalls, write_script


def test_trap_records_every_openat_with_its_path(sysgate_bin, pubdir):
    data = write_script(pubdir, "data.txt", "x\n")
    audit = os.path.join(pubdir, "audit.jsonl")
    r = run("--audit", audit, "--name", "box1", "--trap", "openat", "--", "cat", data)
    assert r.returncode == 0 and r.stdout == "x\n"
    recs = read_audit(audit)
    assert recs[0]["type"] == "sandbox_start" and recs[0]["argv"] == ["cat", data]
    assert recs[-1]["type"] == "sandbox_exit" and recs[-1]["status"] == 0
    assert recs[-1]["reason"] == "exit"
    opens = syscalls(recs, "openat")
    paths = [o["paths"]["arg1"] for o in opens]
    assert data in paths
    assert any(p.endswith("libc.so.6") for p in paths)
    for o in opens:
        assert o["sandbox"] == "box1"
        assert o["nr"] == 257 and o["decided_by"] == "kernel" and o["action"] == "continue"
        assert len(o["args"]) == 6 and all(a.startswith("0x") for a in o["args"])
        assert o["pid"] == recs[0]["pid"]
        assert o["latency_us"] >= 0 and "time" in o
    assert recs[-1]["notifications"] == len(syscalls(recs))


def test_audit_matches_the_programs_own_count(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "audit.jsonl")
    code = "import os\nfor i in range(123): os.getppid()\n"
    r = run("--audit", audit, "--trap", "getppid", "--", PY, "-c", code)
    assert r.returncode == 0
    assert len(syscalls(read_audit(audit), "getppid")) == 123


def test_builtin_decisions_are_attributed(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "audit.jsonl")
    code = ("import os\nprint(os.uname().nodename)\n"
            "try: os.fork()\nexcept BlockingIOError: print('refused')\n")
    r = run("--audit", audit, "--hostname", "hh", "--max-procs", "1", "--", PY, "-c", code)
    assert r.stdout == "hh\nrefused\n"
    recs = syscalls(read_audit(audit))
    unames = [r for r in recs if r["syscall"] == "uname"]
    assert unames and all(u["decided_by"] == "hostname" for u in unames)
    assert all(u["action"] == "return" and u["value"] == 0 for u in unames)
    refused = [r for r in recs if r["decided_by"] == "max-procs"]
    end = read_audit(audit)[-1]
    if "max_procs_refused" in end:  # the pids cgroup refused it: nothing trapped
        assert end["max_procs_refused"] == 1 and not refused
    else:
        assert refused and refused[0]["action"] == "errno" and refused[0]["errno"] == 11


def test_two_path_syscalls_record_both_paths(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "audit.jsonl")
    a, b = os.path.join(pubdir, "a"), os.path.join(pubdir, "b")
    write_script(pubdir, "a", "")
    run("--audit", audit, "--trap", "rename", "--trap", "renameat2", "--trap", "renameat",
        "--", "mv", a, b)
    ren = [r for r in syscalls(read_audit(audit)) if r["syscall"].startswith("rename")]
    assert ren, "mv made no rename call"
    assert ren[0]["paths"] in ({"arg1": a, "arg3": b}, {"arg0": a, "arg1": b})


def test_unreadable_path_is_null(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "audit.jsonl")
    code = ("import ctypes\nlibc = ctypes.CDLL(None)\n"
            "libc.syscall(257, -100, ctypes.c_void_p(16), 0, 0)\n")
    run("--audit", audit, "--trap", "openat", "--", PY, "-c", code)
    bad = [r for r in syscalls(read_audit(audit), "openat") if r["args"][1] == "0x10"]
    assert len(bad) == 1 and bad[0]["paths"] == {"arg1": None}
    assert bad[0]["path_errors"] == {"arg1": "EFAULT"}


def test_audit_to_stderr(sysgate_bin):
    r = run("--audit", "-", "--trap", "getppid", "--", PY, "-c", "import os; os.getppid()")
    import json
    recs = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
    assert any(x["type"] == "syscall" and x["syscall"] == "getppid" for x in recs)
    assert recs[-1]["type"] == "sandbox_exit"


def test_audit_complete_after_timeout(sysgate_bin, pubdir, no_leaks):
    audit = os.path.join(pubdir, "audit.jsonl")
    code = "import os, time\nfor i in range(50): os.getppid()\ntime.sleep(%s)\n" % no_leaks
    r = run("--audit", audit, "--timeout", "1", "--trap", "getppid", "--", PY, "-c", code)
    assert r.returncode == 124
    recs = read_audit(audit)
    assert len(syscalls(recs, "getppid")) == 50
    assert recs[-1]["type"] == "sandbox_exit" and recs[-1]["reason"] == "timeout"
    assert recs[-1]["status"] == 124


def test_audit_appends_not_truncates(sysgate_bin, pubdir):
    audit = os.path.join(pubdir, "audit.jsonl")
    run("--audit", audit, "--", "/bin/true")
    run("--audit", audit, "--", "/bin/true")
    assert [r["type"] for r in read_audit(audit)] == ["sandbox_start", "sandbox_exit"] * 2
