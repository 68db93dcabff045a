"""The command's privileges under a root sysgate (issue 12.5): no capability
at all unless --keep-caps; --user USER runs it as USER (uid, primary group,
supplementary groups)."""
import os
import pwd
import shutil
import subprocess

import pytest

from conftest import BUILD, PY, SYSGATE, TIMEOUT, is_root, run

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root")

CAPS = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"


def caps(stdout):
    return {line.split(":")[0]: int(line.split()[1], 16) for line in stdout.splitlines()}


def test_root_command_has_no_capability(sysgate_bin):
    r = run("--", "sh", "-c", CAPS)
    assert r.returncode == 0
    assert caps(r.stdout) == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}


def test_capability_loss_is_felt(sysgate_bin, pubdir):
    # Root without CAP_DAC_OVERRIDE cannot read a file only its owner may.
    secret = os.path.join(pubdir, "secret")
    with open(secret, "w") as f:
        f.write("s\n")
    os.chmod(secret, 0o600)
    os.chown(secret, 65534, 65534)
    r = run("--", "sh", "-c", f"cat {secret} 2>/dev/null || echo denied")
    assert r.stdout == "denied\n"
    assert run("--keep-caps", "--", "cat", secret).stdout == "s\n"


def test_keep_caps_leaves_them(sysgate_bin):
    mine = caps(subprocess.run(["sh", "-c", CAPS], capture_output=True, text=True,
                               timeout=TIMEOUT).stdout)
    r = run("--keep-caps", "--", "sh", "-c", CAPS)
    assert caps(r.stdout)["CapBnd"] == mine["CapBnd"] != 0


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_user_runs_the_command_as_that_user(sysgate_bin):
    nobody = pwd.getpwnam("nobody")
    r = run("--user", "nobody", "--", PY, "-c",
            "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), "
            "sorted(os.getgroups()))")
    assert r.returncode == 0, r.stderr
    groups = sorted(os.getgrouplist("nobody", nobody.pw_gid))
    assert r.stdout == (f"{nobody.pw_uid} {nobody.pw_uid} {nobody.pw_gid} {nobody.pw_gid} "
                        f"{groups}\n")
    r = run("--user", "nobody", "--", "sh", "-c", CAPS)
    assert set(caps(r.stdout).values()) == {0}


def test_user_errors(sysgate_bin):
    r = run("--user", "no-such-user-sg", "--", "true")
    assert r.returncode == 125 and "--user no-such-user-sg: no such user" in r.stderr


def test_user_needs_root(sysgate_bin, pubdir):
    exe = os.path.join(pubdir, "sysgate")
    shutil.copy2(SYSGATE, exe)
    os.chmod(exe, 0o755)
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "--inh-caps=-all", exe, "run", "--user", "nobody", "--", "true"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 125 and "must run as root" in r.stderr


# Reads the environment of every other child of sysgate (the workers);
# prints how many held a worker token it could read.
READ_WORKER_ENV = """
import glob, os
seen = 0
for f in glob.glob(f"/proc/{os.getppid()}/task/*/children"):
    for pid in open(f).read().split():
        if int(pid) == os.getpid():
            continue
        try:
            seen += b"SYSGATE_WORKER_TOKEN=" in open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            pass
print("tokens read:", seen)
"""


def test_command_cannot_read_a_worker_token(sysgate_bin):
    worker = os.path.join(BUILD, "examples", "sysgate-audit-worker")
    if not os.access(worker, os.X_OK):
        pytest.skip("needs the examples' audit worker (SYSGATE_BUILD_DIR)")
    r = run("--worker", worker, "--", PY, "-c", READ_WORKER_ENV)
    assert r.returncode == 0, r.stderr
    assert "tokens read: 0\n" in r.stdout
