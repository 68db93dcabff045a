"""docs/ is the contract: it names every public function and option, and
every reference to it resolves.

- every function sdk/c/include/sysgate.h declares (SG_API ... sg_*(...)) is
  named in docs/sdk-c.md;
- every public name of the Python package (its __all__, the presets', and
  the public members of its classes) is named in docs/sdk-python.md;
- every long option `sysgate --help` prints is named in docs/cli.md;
- every `docs/FILE.md#anchor` reference in the source tree, and every
  relative link inside docs/*.md, points at an existing file and, with an
  anchor, at an existing heading of it (GitHub's anchor rules).

Environment: SYSGATE_BIN, the sysgate binary (default: `sysgate` on PATH).
"""
import ast
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCS = os.path.join(ROOT, "docs")
HEADER = os.path.join(ROOT, "sdk", "c", "include", "sysgate.h")
PYPKG = os.path.join(ROOT, "sdk", "python", "sysgate")
# The classes whose public members users call, and the module defining each.
PY_CLASSES = {"Handler": "handler.py", "HandlerCtx": "ctx.py", "NotifAction": "action.py",
              "ExceptionPolicy": "action.py", "RunResult": "runner.py"}
SYSGATE = os.environ.get("SYSGATE_BIN") or shutil.which("sysgate")
TIMEOUT = 30

# A public function: SG_API, its return type, the name, "(".
SG_FUNCTION = re.compile(r"\bSG_API\b[^;{()]*?\b(sg_[A-Za-z0-9_]+)\s*\(")
# A long option: `--name`, not part of a longer word or of `---`.
LONG_OPT = re.compile(r"(?<![\w-])--([A-Za-z0-9][A-Za-z0-9-]*)")
# `docs/FILE.md` or `docs/FILE.md#anchor`, not inside another path. Doc
# files are named in lower case (and README.md): FILE.md is a placeholder.
DOC_REF = re.compile(
    r"(?<![\w./-])docs/((?:[a-z0-9][a-z0-9_-]*|README)\.md)(?:#([A-Za-z0-9_-]+))?")
# A Markdown link target: [text](target).
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
# What the tree scan reads, and what it skips.
SOURCE_SUFFIXES = (".c", ".h", ".py", ".md", ".proto", ".txt", ".cmake", ".sh", ".in", ".1")
SKIP_DIRS = {"__pycache__", "node_modules"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def names_in(text, name):
    """Is `name` in text as a whole word (not a prefix of a longer name)?"""
    return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text) is not None


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation (backticks,
    parentheses, apostrophes, colons, ...) dropped, blanks become hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def code_text(path):
    """The code of a Markdown file: its fenced blocks and inline `spans`."""
    out, fenced = [], False
    for line in read(path).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            out.append(line)
        else:
            out.extend(re.findall(r"`([^`]+)`", line))
    return "\n".join(out)


def anchors(path):
    """The anchors of a Markdown file's headings (not those in code blocks),
    numbered as GitHub numbers repeated ones."""
    seen, out, fenced = {}, set(), False
    for line in read(path).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def source_files():
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "build")) and
                         d not in SKIP_DIRS)
        for f in sorted(files):
            if f.endswith(SOURCE_SUFFIXES) or f == "CMakeLists.txt":
                yield os.path.join(top, f)


@pytest.fixture(scope="module")
def sdk_functions():
    names = sorted(set(SG_FUNCTION.findall(read(HEADER))))
    # Parsed at all: the header declares these for sure.
    assert {"sg_worker_new", "sg_worker_run", "sg_ctx_read", "sg_syscall_name"} <= set(names), \
        f"{HEADER} parsed badly: {names}"
    return names


def module_all(tree):
    """The strings of a module's __all__."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [e.value for e in node.value.elts]
    return []


def class_members(tree, name):
    """Public methods, properties, class attributes, dataclass fields and
    __slots__ entries of class `name` in tree."""
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    out = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id == "__slots__":
                    out.update(e.value for e in node.value.elts)
                elif isinstance(t, ast.Name):
                    out.add(t.id)
    return sorted(n for n in out if not n.startswith("_"))


@pytest.fixture(scope="module")
def python_names():
    parse = lambda f: ast.parse(read(os.path.join(PYPKG, f)))  # noqa: E731
    names = set(module_all(parse("__init__.py"))) | set(module_all(parse("presets.py")))
    for cls, module in PY_CLASSES.items():
        names.update(f"{cls}.{m}" for m in class_members(parse(module), cls))
    assert {"serve", "run", "COMMON_PATH_SYSCALLS", "HandlerCtx.read_path",
            "NotifAction.inject_bytes"} <= names, f"the package parsed badly: {sorted(names)}"
    return sorted(names)


@pytest.fixture(scope="module")
def help_options():
    assert SYSGATE, "set SYSGATE_BIN or put sysgate on PATH"
    p = subprocess.run([SYSGATE, "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"sysgate --help exited {p.returncode}: {p.stderr}"
    opts = sorted(set(LONG_OPT.findall(p.stdout)))
    assert {"help", "read", "worker", "audit"} <= set(opts), f"--help parsed badly: {opts}"
    return opts


def test_every_sdk_function_is_in_sdk_c_md(sdk_functions):
    doc = read(os.path.join(DOCS, "sdk-c.md"))
    missing = [n for n in sdk_functions if not names_in(doc, n)]
    assert not missing, "declared in sysgate.h but not in docs/sdk-c.md: " + ", ".join(missing)


def test_every_public_python_name_is_in_sdk_python_md(python_names):
    # In code: `NotifAction.returns(v)`, not the word "returns" in a sentence.
    code = code_text(os.path.join(DOCS, "sdk-python.md"))
    missing = [n for n in python_names if not names_in(code, n.rpartition(".")[2])]
    assert not missing, "public in sdk/python but not in docs/sdk-python.md: " + ", ".join(
        missing)


def test_every_help_option_is_in_cli_md(help_options):
    doc = read(os.path.join(DOCS, "cli.md"))
    missing = [o for o in help_options if not names_in(doc, "--" + o)]
    assert not missing, "in sysgate --help but not in docs/cli.md: " + ", ".join(
        "--" + o for o in missing)


def test_references_to_docs_resolve():
    bad, count = [], 0
    for path in source_files():
        try:
            text = read(path)
        except (UnicodeDecodeError, OSError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in DOC_REF.finditer(line):
                count += 1
                target = os.path.join(DOCS, m.group(1))
                where = f"{os.path.relpath(path, ROOT)}:{lineno}: {m.group(0)}"
                if not os.path.isfile(target):
                    bad.append(f"{where}: no such file")
                elif m.group(2) and m.group(2) not in anchors(target):
                    bad.append(f"{where}: no such heading")
    assert count, "no docs/ reference found in the tree: the scan is broken"
    assert not bad, "references to docs/ that do not resolve:\n" + "\n".join(bad)


def test_links_inside_docs_resolve():
    bad, count = [], 0
    for name in sorted(os.listdir(DOCS)):
        if not name.endswith(".md"):
            continue
        path = os.path.join(DOCS, name)
        fenced = False
        for lineno, line in enumerate(read(path).splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            for m in MD_LINK.finditer(line):
                target = m.group(1)
                if re.match(r"[a-z]+:", target):
                    continue  # http:, mailto:
                count += 1
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(DOCS, file_part)) if file_part else path
                where = f"docs/{name}:{lineno}: ({target})"
                if not os.path.exists(dest):
                    bad.append(f"{where}: no such file")
                elif anchor and (not dest.endswith(".md") or anchor not in anchors(dest)):
                    bad.append(f"{where}: no such heading")
    assert count, "no link found in docs/*.md: the scan is broken"
    assert not bad, "links in docs/ that do not resolve:\n" + "\n".join(bad)
