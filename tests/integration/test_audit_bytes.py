"""Byte strings that are not UTF-8 are in the audit log exactly: a program
cannot hide what it opened or ran behind an invalid byte (issue 17, 4-5).

The log writes such a value as {"escaped": E}: E is the bytes with each
backslash doubled and each byte outside a valid UTF-8 sequence as \\xHH."""
import json
import os
import re
import shutil
import subprocess
import textwrap

from conftest import PY, SDK, TIMEOUT, read_audit, run, sdk_env, syscalls


def decode(value):
    """The exact bytes of an audit value (README, "Audit records"),
    checking the form while at it."""
    if isinstance(value, str):
        return value.encode()
    assert isinstance(value, dict) and list(value) == ["escaped"], value
    text, out, i = value["escaped"], bytearray(), 0
    while i < len(text):
        if text[i] != "\\":
            out += text[i].encode()
            i += 1
        elif text[i + 1] == "\\":
            out += b"\\"
            i += 2
        else:
            assert re.fullmatch("x[0-9a-f]{2}", text[i + 1:i + 4]), text
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
    return bytes(out)


def test_cat_through_a_non_utf8_directory_is_recorded_exactly(sysgate_bin, pubdir):
    """`cat DIR/\\xff/../secret`: before, the openat was recorded with a
    null path ("not UTF-8") and argv[1] as null: what cat read was hidden."""
    secret = os.path.join(pubdir, "secret")
    with open(secret, "w") as f:
        f.write("the secret\n")
    os.mkdir(os.path.join(pubdir.encode(), b"\xff"))
    target = pubdir.encode() + b"/\xff/../secret"
    audit = os.path.join(pubdir, "audit.jsonl")
    r = subprocess.run([sysgate_bin.encode(), b"run", b"--audit", audit.encode(), b"--trap",
                        b"openat", b"--", b"/bin/cat", target],
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"the secret\n"
    recs = read_audit(audit)
    start = recs[0]
    assert start["type"] == "sandbox_start"
    assert [decode(a) for a in start["argv"]] == [b"/bin/cat", target]
    assert start["argv"][1] == {"escaped": pubdir + "/\\xff/../secret"}
    opened = [r for r in syscalls(recs, "openat") if decode(r["paths"]["arg1"]) == target]
    assert len(opened) == 1, [r["paths"] for r in syscalls(recs, "openat")]
    assert "path_errors" not in opened[0]


def test_escaping_is_lossless_for_backslashes_and_cut_characters(sysgate_bin, pubdir):
    """A backslash next to an invalid byte, and a multibyte character cut
    short, come back byte for byte."""
    name = b"a\\x41\\\xc3(\xe2\x82\xff\xc3\xa9"
    path = pubdir.encode() + b"/" + name
    audit = os.path.join(pubdir, "audit.jsonl")
    code = "import os, sys\ntry: os.open(os.fsencode(sys.argv[1]), 0)\nexcept OSError: pass\n"
    r = subprocess.run([sysgate_bin.encode(), b"run", b"--audit", audit.encode(), b"--trap",
                        b"openat", b"--", PY.encode(), b"-c", code.encode(), path],
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    recs = read_audit(audit)
    assert decode(recs[0]["argv"][3]) == path
    got = [r["paths"]["arg1"] for r in syscalls(recs, "openat")
           if decode(r["paths"]["arg1"]) == path]
    assert got == [{"escaped": pubdir + "/a\\\\x41\\\\\\xc3(\\xe2\\x82\\xff\u00e9"}]


def test_non_utf8_command_path_and_default_name(sysgate_bin, pubdir):
    """A command whose own file name is not UTF-8: its path is recorded
    exactly, and the default sandbox name (made from it) is still valid."""
    prog = pubdir.encode() + b"/tr\xffue"
    shutil.copy("/bin/true", prog)
    os.chmod(prog, 0o755)
    audit = os.path.join(pubdir, "audit.jsonl")
    r = subprocess.run([sysgate_bin.encode(), b"run", b"--audit", audit.encode(), b"--", prog],
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    recs = read_audit(audit)
    assert [x["type"] for x in recs] == ["sandbox_start", "sandbox_exit"]
    assert decode(recs[0]["path"]) == prog
    assert recs[0]["sandbox"].startswith("tr?ue-")


# --- the Python SDK ------------------------------------------------------------

def test_python_audit_paths_handler_emits_non_utf8_paths(sysgate_bin, rundir_base, tmp_path):
    """The README's AuditPathsHandler(lambda ctx, path: audit.emit(...)) on
    a path with an undecodable byte: before, emit raised ValueError
    (handler_failed) and the record was lost."""
    os.chmod(tmp_path, 0o755)
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    os.mkdir(os.path.join(bytes(tmp_path), b"\xfe"))
    target = os.fsdecode(bytes(tmp_path) + b"/\xfe/../secret")
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import json, os
        from sysgate import run
        from sysgate.presets import AuditPathsHandler
        audit = AuditPathsHandler(lambda ctx, path: audit.emit({{"path": path}}))
        target = os.fsdecode({os.fsencode(target)!r})
        r = run(["/bin/cat", target], [("openat", audit)])
        failed = [e for e in r.events if e.get("type") == "handler_failed"]
        print(json.dumps({{"rc": r.returncode, "stderr": r.stderr, "failed": len(failed),
                          "exact": {{"path": target}} in r.records,
                          "wire": [e["data"] for e in r.events if e.get("type") == "record"
                                   and isinstance(e["data"]["path"], dict)]}}))
    """))
    p = subprocess.run([PY, str(driver)], capture_output=True, text=True, timeout=TIMEOUT,
                       env=sdk_env(rundir_base), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0, out["stderr"]
    assert out["failed"] == 0, out["stderr"]
    assert out["exact"], out
    assert [decode(w["path"]) for w in out["wire"]] == [os.fsencode(target)]


def test_python_decode_helpers_read_the_supervisors_log(sysgate_bin, pubdir):
    """sysgate.decode_bytes reads what the supervisor wrote, byte for byte."""
    os.mkdir(os.path.join(pubdir.encode(), b"\x80\\"))
    target = pubdir.encode() + b"/\x80\\/../x"
    audit = os.path.join(pubdir, "audit.jsonl")
    subprocess.run([sysgate_bin.encode(), b"run", b"--audit", audit.encode(), b"--trap",
                    b"openat", b"--", b"/bin/cat", target], capture_output=True,
                   timeout=TIMEOUT)
    code = ("import json, sys, sysgate\n"
            "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
            "sys.stdout.buffer.write(sysgate.decode_bytes(recs[0]['argv'][1]))\n")
    p = subprocess.run([PY, "-c", code, audit], capture_output=True, timeout=TIMEOUT,
                       env=dict(os.environ, PYTHONPATH=SDK))
    assert p.returncode == 0, p.stderr
    assert p.stdout == target
