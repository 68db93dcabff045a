"""`cmake --install` lays out a usable SDK: a program builds against it with
pkg-config (shared and static) and the man page is there."""
import os
import shutil
import subprocess

import pytest

BUILD = os.environ.get("SYSGATE_BUILD_DIR")
CMAKE = os.environ.get("SYSGATE_CMAKE", "cmake")
# A sanitizer build's libraries need the sanitizer runtimes in the program.
CFLAGS = os.environ.get("SYSGATE_TEST_CFLAGS", "").split()

pytestmark = pytest.mark.skipif(not BUILD or not shutil.which("cc"),
                                reason="needs SYSGATE_BUILD_DIR and a C compiler")

PROGRAM = r"""
#include <stdio.h>
#include <sysgate.h>
int main(void)
{
	printf("%ld %s %d\n", sg_syscall_nr("openat"), sg_syscall_name(39), SG_EXC_DENY_EIO);
	return 0;
}
"""


def sh(*cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_install_and_build_against_the_sdk(pubdir):
    prefix = os.path.join(pubdir, "prefix")
    sh(CMAKE, "--install", BUILD, "--prefix", prefix)
    assert os.access(os.path.join(prefix, "bin", "sysgate"), os.X_OK)
    assert os.path.exists(os.path.join(prefix, "share", "man", "man1", "sysgate.1"))
    pcdirs = [os.path.join(root) for root, _, files in os.walk(prefix) if "sysgate.pc" in files]
    assert len(pcdirs) == 1
    env = dict(os.environ, PKG_CONFIG_PATH=pcdirs[0])
    src = os.path.join(pubdir, "prog.c")
    with open(src, "w") as f:
        f.write(PROGRAM)
    flags = sh("pkg-config", "--cflags", "--libs", "sysgate", env=env).split()
    exe = os.path.join(pubdir, "prog")
    sh("cc", *CFLAGS, "-o", exe, src, *flags)
    libdir = os.path.dirname(pcdirs[0])
    out = sh(exe, env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    assert out == "257 getpid 3\n"
    # Static: the archive carries everything of sysgate's own.
    static = sh("pkg-config", "--cflags", "--libs", "--static", "sysgate", env=env).split()
    exe_s = exe + "-static"
    sh("cc", *CFLAGS, "-o", exe_s, src, os.path.join(libdir, "libsysgate.a"),
       *[f for f in static if f != "-lsysgate"])
    assert sh(exe_s) == "257 getpid 3\n"
