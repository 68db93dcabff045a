"""The audit file: a name that goes into every record, the file itself,
write errors, and where the command could rewrite it (issue 12, 10-12).

No record is ever lost silently: one that cannot be written ends the run
with 125 and a message."""
import json
import os
import stat
import subprocess
import tempfile
import textwrap
import time

import pytest

from conftest import (PY, SYSTEM_RO, TIMEOUT, is_root, landlock_abi, read_audit, run,
                      sdk_env, syscalls)

needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="no Landlock")


# --- 12.10: the sandbox name ------------------------------------------------------

def test_default_name_cut_inside_a_character_still_audits(sysgate_bin, pubdir):
    """A command named "a" and 35 two-byte characters: the default name was
    cut at byte 64, inside a character, and every record failed to encode
    (an empty log, exit 0, no warning)."""
    prog = os.path.join(pubdir, "a" + "\u00e9" * 35)
    os.symlink("/bin/true", prog)
    audit = os.path.join(pubdir, "audit.jsonl")
    r = run("--audit", audit, "--", prog)
    assert r.returncode == 0, r.stderr
    recs = read_audit(audit)
    assert [x["type"] for x in recs] == ["sandbox_start", "sandbox_exit"]
    name = recs[0]["sandbox"]
    assert name == "a" + "\u00e9" * 31 + f"-{name.rsplit('-', 1)[1]}"


def test_default_name_cut_inside_a_character_workers_start(sysgate_bin, pubdir):
    """Same, with a worker: it refused the Welcome (invalid UTF-8 sandbox
    name) in a restart loop; now it starts once and answers."""
    prog = os.path.join(pubdir, "a" + "\u00e9" * 35)
    os.symlink(PY, prog)
    worker = os.path.join(os.environ["SYSGATE_BUILD_DIR"], "tests", "workers", "sg-misbehave")
    audit = os.path.join(pubdir, "audit.jsonl")
    r = run("--audit", audit, "--worker", f"{worker} --syscall getppid ok", "--", prog, "-c",
            "import os; os.getppid(); print('ran')")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"
    recs = read_audit(audit)
    types = [x["type"] for x in recs]
    assert "worker_failed" not in types and "worker_restart" not in types, r.stderr
    assert types.count("worker_start") == 1, types


@pytest.mark.parametrize("name", [b"a\xffb", b"box\x01", b"\xc3"])
def test_bad_name_is_refused(sysgate_bin, pubdir, name):
    audit = os.path.join(pubdir, "audit.jsonl")
    r = subprocess.run([sysgate_bin.encode(), b"run", b"--audit", audit.encode(), b"--name",
                        name, b"--", b"/bin/true"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 125
    assert b"--name" in r.stderr and b"UTF-8" in r.stderr
    assert not os.path.exists(audit)


# --- 12.11: the file ---------------------------------------------------------------

def test_symlink_is_refused(sysgate_bin, pubdir):
    target = os.path.join(pubdir, "elsewhere")
    link = os.path.join(pubdir, "audit.jsonl")
    os.symlink(target, link)
    r = run("--audit", link, "--", "/bin/true")
    assert r.returncode == 125
    assert "symbolic link" in r.stderr and link in r.stderr
    assert not os.path.exists(target)


def test_fifo_without_a_reader_is_refused_at_once(sysgate_bin, pubdir):
    """Opening a FIFO for writing waits for a reader: start-up hung, with
    signals blocked (Ctrl-C did nothing)."""
    fifo = os.path.join(pubdir, "audit.fifo")
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = run("--audit", fifo, "--", "/bin/true", timeout=20)
    assert r.returncode == 125
    assert "not a regular file" in r.stderr
    assert time.monotonic() - t0 < 10


def test_fifo_with_a_reader_and_devices_are_refused(sysgate_bin, pubdir):
    fifo = os.path.join(pubdir, "audit.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = run("--audit", fifo, "--", "/bin/true")
    finally:
        os.close(reader)
    assert r.returncode == 125 and "not a regular file" in r.stderr
    r = run("--audit", "/dev/null", "--", "/bin/true")
    assert r.returncode == 125 and "not a regular file" in r.stderr


def test_write_error_on_stderr_ends_the_run(sysgate_bin):
    """--audit - with standard error on /dev/full: before, exit 0."""
    with open("/dev/full", "w") as full:
        r = subprocess.run([sysgate_bin, "run", "--audit", "-", "--trap", "getppid", "--",
                            PY, "-c", "import os; os.getppid(); print('ran')"],
                           stdout=subprocess.PIPE, stderr=full, text=True, timeout=TIMEOUT)
    assert r.returncode == 125


@pytest.fixture
def small_tmpfs():
    """A 64 KiB tmpfs mounted under a temporary directory, unmounted and
    removed afterwards."""
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    d = tempfile.mkdtemp(prefix="sysgate-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "sgaudit", d],
                   check=True, timeout=TIMEOUT)
    try:
        yield d
    finally:
        subprocess.run(["umount", d], check=True, timeout=TIMEOUT)
        os.rmdir(d)


def test_no_space_left_ends_the_run_with_125(sysgate_bin, small_tmpfs):
    """ENOSPC mid-run: said on stderr, the sandbox is ended, exit 125 (before:
    exit 0 with a short log)."""
    audit = os.path.join(small_tmpfs, "audit.jsonl")
    code = ("import os\n"
            "for i in range(100000): os.getppid()\n"
            "print('finished')\n")
    r = run("--audit", audit, "--trap", "getppid", "--", PY, "-c", code)
    assert r.returncode == 125, r.stderr
    assert "--audit" in r.stderr and "No space left on device" in r.stderr
    assert "finished" not in r.stdout  # ended when the log failed, not after


# --- 12.12: where the command could rewrite the log --------------------------------

@needs_landlock
def test_audit_beneath_a_write_path_is_refused(sysgate_bin, pubdir):
    """-w DIR with the log in DIR: the command could truncate it."""
    audit = os.path.join(pubdir, "audit.jsonl")
    r = run(*SYSTEM_RO, "-w", pubdir, "--audit", audit, "--", "/bin/true")
    assert r.returncode == 125
    assert "--audit" in r.stderr and "-w" in r.stderr
    # Through a symbolic link to the directory, and the file itself as -w.
    link = os.path.join(pubdir, "link")
    os.mkdir(os.path.join(pubdir, "sub"))
    os.symlink(os.path.join(pubdir, "sub"), link)
    r = run(*SYSTEM_RO, "-w", link, "--audit", os.path.join(pubdir, "sub", "a.jsonl"), "--",
            "/bin/true")
    assert r.returncode == 125, r.stderr
    open(audit, "w").close()
    r = run(*SYSTEM_RO, "-w", audit, "--audit", audit, "--", "/bin/true")
    assert r.returncode == 125, r.stderr


@needs_landlock
def test_hard_link_beneath_a_write_path_is_refused(sysgate_bin, pubdir):
    os.mkdir(os.path.join(pubdir, "w"))
    audit = os.path.join(pubdir, "audit.jsonl")
    open(audit, "w").close()
    os.link(audit, os.path.join(pubdir, "w", "alias"))
    r = run(*SYSTEM_RO, "-w", os.path.join(pubdir, "w"), "--audit", audit, "--", "/bin/true")
    assert r.returncode == 125
    assert "hard link" in r.stderr


@needs_landlock
def test_audit_outside_the_write_paths_is_kept_and_unwritable(sysgate_bin, pubdir):
    """With -r/-w and the log elsewhere: no warning, and the command's attempt
    to truncate the log fails (EACCES from Landlock)."""
    w = os.path.join(pubdir, "w")
    os.mkdir(w)
    audit = os.path.join(pubdir, "audit.jsonl")
    code = (f"import os\ntry: os.truncate({audit!r}, 0); print('truncated')\n"
            "except OSError as e: print(e.errno)\n")
    r = run(*SYSTEM_RO, "-w", w, "--audit", audit, "--trap", "getppid", "--", PY, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "13\n"
    assert "warning" not in r.stderr
    assert [x["type"] for x in read_audit(audit)][0] == "sandbox_start"


def test_unrestricted_command_gets_a_warning(sysgate_bin, pubdir):
    """No -r/-w: the command runs with the caller's access and can rewrite
    the log; sysgate says so instead of promising a tamper-proof log."""
    audit = os.path.join(pubdir, "audit.jsonl")
    r = run("--audit", audit, "--", "/bin/true")
    assert r.returncode == 0
    assert "warning" in r.stderr and audit in r.stderr and "-r/-w" in r.stderr


@needs_landlock
def test_python_run_keeps_records_where_the_command_cannot_write(sysgate_bin, rundir_base,
                                                                  tmp_path):
    """run(..., write=[TMPDIR]): the records file lived in TMPDIR, and the
    command truncated it; now it is in a private directory outside."""
    os.chmod(tmp_path, 0o755)
    attack = textwrap.dedent("""
        import glob, os, sys
        os.getppid()
        hit = []
        for pattern in (os.environ["TMPDIR"] + "/**/*.jsonl", "/dev/shm/sysgate-*/*.jsonl",
                        "/var/tmp/sysgate-*/*.jsonl"):
            for f in glob.glob(pattern, recursive=True):
                try:
                    os.truncate(f, 0)
                    hit.append(f)
                except OSError:
                    pass
        print(len(hit))
    """)
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import json, os, tempfile
        from sysgate import Handler, NotifAction, run
        class Mark(Handler):
            def handle(self, ctx):
                self.emit("called")
                return NotifAction.continue_()
        tmp = tempfile.gettempdir()
        r = run([{PY!r}, "-c", {attack!r}], [("getppid", Mark())],
                read=["/"], write=[tmp])
        print(json.dumps({{"rc": r.returncode, "out": r.stdout, "err": r.stderr,
                          "records": r.records}}))
    """))
    p = subprocess.run([PY, str(driver)], capture_output=True, text=True, timeout=TIMEOUT,
                       env=sdk_env(rundir_base), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0, out["err"]
    assert out["records"] == ["called"], out
