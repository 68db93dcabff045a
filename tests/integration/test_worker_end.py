"""A worker leaves a run only when told to (issue 12 item 17).

A run of the full bench on a busy machine once ended with a worker of the
nng-worker-replicas case exiting with status 0 mid-run: the C SDK took a link
that ended without a Goodbye for the orderly end of the run, so sg_worker_run()
returned 0 and the worker left silently; sysgate saw "exited with status 0",
answered what it held with its exception policy (EIO) and the program failed.
The supervisor never drops a live worker's link without killing it first, and
says Goodbye at the end: a link that ends otherwise is a failure, and the
worker must say so and exit non-zero. sg-droplink drops its own link in the
middle of a run, as a transport failure would, while the process lives on.
(bench/soak.sh loops the bench's replicas and lane cases under a CPU-bound
neighbour for minutes and fails on any worker exit.)
"""
import json
import os
import re

import pytest

from conftest import BUILD, GETPPID, PY, SYSCALL_ERRNOS, env_with, run

DROPLINK = os.path.join(BUILD, "tests", "workers", "sg-droplink")
BENCH_WORKER = os.path.join(BUILD, "bench", "sg_bench_worker")
BENCH_LOOP = os.path.join(BUILD, "bench", "sg_bench_loop")
EXITED = re.compile(r"^sysgate: worker '[^']*' .*\(pid \d+\) exited with status (\d+)", re.M)
EIO = 5


@pytest.mark.parametrize("transport", ["fast", "nng"])
@pytest.mark.parametrize("replicas", ["1", "2"])
def test_a_lost_link_is_a_failure_never_exit_0(sysgate_bin, rundir_base, transport, replicas):
    """The worker's link drops on its third call: the worker reports it and
    exits 1 (or is killed for a closed link if slower than the grace), never
    0; the program saw its first calls answered, and the run goes on with a
    restarted worker."""
    r = run("--worker", f"{DROPLINK} --after 2", "--replicas", replicas,
            "--worker-transport", transport, "--", PY, "-c", SYSCALL_ERRNOS, str(GETPPID),
            "40", env=env_with(rundir_base), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "sg-droplink: dropped the link" in r.stderr, r.stderr
    statuses = EXITED.findall(r.stderr)
    assert "0" not in statuses, r.stderr
    reported = ("the link ended without a Goodbye" in r.stderr and "1" in statuses)
    assert reported or "closed its link" in r.stderr, r.stderr
    errnos = json.loads(r.stdout.replace("'", '"'))
    assert errnos[:2] == [0, 0], errnos
    assert set(errnos) <= {0, EIO}, errnos


@pytest.mark.parametrize("transport", ["fast", "nng"])
def test_bench_replicas_end_with_goodbye_only(sysgate_bin, rundir_base, transport):
    """The bench's replicas case, with -v: both replicas serve to the end,
    and no worker exits, fails or is restarted during the run."""
    r = run("-v", "--worker", f"{BENCH_WORKER} continue", "--replicas", "2",
            "--worker-transport", transport, "--", BENCH_LOOP, "--threads", "2", "getppid",
            "4000", env=env_with(rundir_base), timeout=120)
    assert r.returncode == 0, r.stderr
    float(r.stdout)
    assert not EXITED.search(r.stderr), r.stderr
    for bad in ("restarting", "closed its link", "did not answer", "gets exception policy"):
        assert bad not in r.stderr, r.stderr
