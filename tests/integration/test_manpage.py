"""The man page documents exactly the options `sysgate run --help` lists.

`cli_run_usage` (supervisor/cli.c) is the authoritative option list; docs/sysgate.1
must follow it in both directions: every long option of --help is documented
in the man page, and every option the man page's OPTIONS section names
exists in --help. Tags (`-r, --read PATH`) must also carry the same short
option and metavariable as --help.

Environment: SYSGATE_BIN, the sysgate binary (default: `sysgate` on PATH);
SYSGATE_MANPAGE, the man page (default: docs/sysgate.1 of this checkout).
"""
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MANPAGE = os.environ.get("SYSGATE_MANPAGE") or os.path.normpath(
    os.path.join(HERE, os.pardir, os.pardir, "docs", "sysgate.1"))
SYSGATE = os.environ.get("SYSGATE_BIN") or shutil.which("sysgate")
TIMEOUT = 30

# A long option: `--name`, not part of a longer word or of `---`.
LONG_OPT = re.compile(r"(?<![\w-])--([A-Za-z0-9][A-Za-z0-9-]*)")
# An option line of --help: "  -r, --read PATH     text", "      --worker 'CMD [ARG...]'  text".
HELP_ENTRY = re.compile(
    r"^\s+(?:(?P<short>-[A-Za-z0-9]),\s+)?--(?P<long>[A-Za-z0-9][A-Za-z0-9-]*)"
    r"(?:[ =](?P<meta>\S+(?: \S+)*))?(?:\s{2,}|$)")

# roff escapes that matter for option names and metavariables.
ESCAPES = [
    (re.compile(r"\\f(?:\[[^\]]*\]|\([A-Za-z0-9]{2}|[A-Za-z0-9])"), ""),  # font changes
    (re.compile(r"\\[&%,/]"), ""),  # zero-width
    (re.compile(r"\\\(aq"), "'"),
    (re.compile(r"\\\(dq"), '"'),
    (re.compile(r"\\\((?:em|en|hy|mi)"), "-"),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\-"), "-"),
    (re.compile(r"\\e"), "\\\\"),
]
FONT_MACROS = {"B", "I", "SM", "SB"}  # arguments joined by blanks
ALTERNATING_MACROS = {"BR", "RB", "BI", "IB", "IR", "RI"}  # arguments concatenated


def unescape(text):
    for pattern, repl in ESCAPES:
        text = pattern.sub(repl, text)
    return text


def macro_args(rest):
    """Splits a macro's arguments as roff does: blanks separate, double quotes
    group ("" inside quotes is a literal quote)."""
    return [m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2)
            for m in re.finditer(r'"((?:[^"]|"")*)"?|(\S+)', rest)]


def roff_line_text(line):
    """The text a man(7) source line contributes, without fonts and escapes."""
    if line.startswith(".\\\"") or line.startswith("'\\\""):
        return ""
    if line.startswith("."):
        m = re.match(r"\.\s*([A-Za-z]+)\s*(.*)", line)
        if not m:
            return ""
        name, rest = m.groups()
        if name in FONT_MACROS:
            return unescape(" ".join(macro_args(rest)))
        if name in ALTERNATING_MACROS:
            return unescape("".join(macro_args(rest)))
        if name in {"TP", "PP", "P", "LP", "IP", "RS", "RE", "br", "sp", "in", "nh", "hy",
                    "EX", "EE", "ad", "na", "fi", "nf"}:
            return unescape(" ".join(macro_args(rest))) if name == "IP" else ""
        return unescape(rest)  # .SH, .SS, .TH ...: their text
    return unescape(line)


def sections(lines):
    """{section name: [source lines]} for every .SH of the page."""
    out, name = {}, None
    for line in lines:
        m = re.match(r"\.SH\s+(.*)", line)
        if m:
            name = " ".join(macro_args(m.group(1)))
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return out


def item_tags(lines):
    """Tag texts of the list items (.TP next line, .IP argument) in lines."""
    tags = []
    for i, line in enumerate(lines):
        if re.match(r"\.TP\b", line):
            for nxt in lines[i + 1:]:
                if not nxt.startswith(".\\\""):
                    tags.append(roff_line_text(nxt).strip())
                    break
        elif re.match(r"\.IP\s+\S", line):
            args = macro_args(line[3:])
            if args and args[0]:
                tags.append(unescape(args[0]).strip())
    return tags


def has_option(text, opt):
    return re.search(r"(?<![\w-])--" + re.escape(opt) + r"(?![\w-])", text) is not None


@pytest.fixture(scope="module")
def help_text():
    assert SYSGATE and os.access(SYSGATE, os.X_OK), "set SYSGATE_BIN to the built sysgate"
    p = subprocess.run([SYSGATE, "run", "--help"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, f"sysgate run --help exited {p.returncode}: {p.stderr}"
    assert p.stdout.strip(), "sysgate run --help printed nothing"
    return p.stdout


@pytest.fixture(scope="module")
def help_options(help_text):
    opts = set(LONG_OPT.findall(help_text))
    # Guard against a parser that finds nothing and so checks nothing.
    assert {"help", "read", "audit"} <= opts, f"--help parsed badly: {sorted(opts)}"
    return opts


@pytest.fixture(scope="module")
def help_entries(help_text):
    """{long option: (short option or None, metavariable or None)}."""
    entries = {}
    for line in help_text.splitlines():
        m = HELP_ENTRY.match(line)
        if m:
            entries[m.group("long")] = (m.group("short"), m.group("meta"))
    assert entries, "no option lines found in --help"
    return entries


@pytest.fixture(scope="module")
def manpage_lines():
    assert os.path.isfile(MANPAGE), f"man page not found: {MANPAGE} (set SYSGATE_MANPAGE)"
    with open(MANPAGE, encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def options_section(manpage_lines):
    secs = sections(manpage_lines)
    assert "OPTIONS" in secs, f"{MANPAGE} has no .SH OPTIONS section"
    return secs["OPTIONS"]


def test_every_help_option_appears_in_manpage(help_options, manpage_lines):
    # Written roff-style: hyphens may be escaped (`\-`) and fonts changed
    # (`\fB\-\-read\fR`); compare with those undone.
    text = "\n".join(roff_line_text(line) for line in manpage_lines)
    missing = sorted(o for o in help_options if not has_option(text, o))
    assert not missing, f"in --help but not in {MANPAGE}: " + ", ".join(
        "--" + o for o in missing)


def test_every_help_option_is_documented_in_options(help_options, options_section):
    tags = "\n".join(item_tags(options_section))
    undocumented = sorted(o for o in help_options if not has_option(tags, o))
    assert not undocumented, "in --help but no item of the man page's OPTIONS: " + ", ".join(
        "--" + o for o in undocumented)


def test_every_manpage_option_is_in_help(help_options, options_section):
    text = "\n".join(roff_line_text(line) for line in options_section)
    named = set(LONG_OPT.findall(text))
    assert named, "no --option found in the man page's OPTIONS section"
    unknown = sorted(named - help_options)
    assert not unknown, "in the man page's OPTIONS but not in --help: " + ", ".join(
        "--" + o for o in unknown)


def test_short_options_and_metavariables_match(help_entries, options_section):
    tags = item_tags(options_section)
    problems = []
    for opt, (short, meta) in sorted(help_entries.items()):
        mine = [t for t in tags if has_option(t, opt)]
        if len(mine) != 1:
            problems.append(f"--{opt}: {len(mine)} items in OPTIONS, expected 1")
            continue
        tag = mine[0]
        m = re.search(r"(?<![\w-])--" + re.escape(opt) + r"(?![\w-])", tag)
        tag_meta = tag[m.end():].lstrip("=").strip() or None
        if tag_meta != meta:
            problems.append(f"--{opt}: man page has {tag_meta!r}, --help has {meta!r}")
        tag_short = re.findall(r"(?<![\w-])-([A-Za-z0-9])(?![\w-])", tag[:m.start()])
        want_short = [short[1]] if short else []
        if tag_short != want_short:
            problems.append(f"--{opt}: man page short option {tag_short}, --help {want_short}")
    assert not problems, "man page tags differ from --help:\n" + "\n".join(problems)
