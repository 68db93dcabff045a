"""Byte strings in sysgate's audit log, losslessly.

A value that is not valid UTF-8 (a path, an ``argv`` element, a string a
handler emitted holding undecodable bytes or a NUL) cannot be a JSON string.
sysgate writes it as the object ``{"escaped": E}``: ``E`` is the bytes with
each backslash doubled and each byte that is not part of a valid UTF-8
sequence (and NUL) written as ``\\xHH`` (two lowercase hex digits); every
other character is itself. Valid UTF-8 stays a plain JSON string. The same
form is used by the supervisor (``paths``, ``argv``, ``path``, ``command``)
and by :meth:`sysgate.Handler.emit` (``data`` of ``record`` events).

:func:`decode_bytes` turns either form back into the exact bytes;
:func:`decode_record` turns every escaped object in a decoded JSON value into
a ``str`` as :func:`os.fsdecode` makes it (surrogate escapes), which is what
the SDK hands out (``ctx.read_path()``, the presets' ``path``).
"""

from __future__ import annotations

import os
import re
from typing import Any, Union

__all__ = ["escape_bytes", "decode_bytes", "decode_record", "encode_value"]

_ESCAPE = re.compile(r"\\(?:(\\)|x([0-9a-f]{2}))|\\")


def escape_bytes(data: bytes) -> str:
    """``E`` of ``{"escaped": E}`` for ``data`` (see the module)."""
    out = []
    for ch in data.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o == 0:
            out.append("\\x00")
        else:
            out.append(ch)
    return "".join(out)


def _unescape(text: str) -> bytes:
    def one(m: "re.Match[str]") -> str:
        if m.group(1):
            return "\\"
        if m.group(2):
            byte = int(m.group(2), 16)
            # Bytes past ASCII as surrogate escapes, so they encode back.
            return chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)
        raise ValueError(f"malformed escape in {text!r}")
    return _ESCAPE.sub(one, text).encode("utf-8", "surrogateescape")


def decode_bytes(value: Union[str, dict]) -> bytes:
    """The exact bytes of an audit value: a JSON string (UTF-8) or an
    ``{"escaped": E}`` object. ValueError for anything else."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"escaped"} \
            and isinstance(value["escaped"], str):
        return _unescape(value["escaped"])
    raise ValueError(f"not an audit string: {value!r}")


def _is_escaped(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) == 1
            and isinstance(value.get("escaped"), str))


def decode_record(value: Any) -> Any:
    """``value`` (decoded JSON) with every ``{"escaped": E}`` object turned
    into a ``str`` as :func:`os.fsdecode` makes it; everything else as is.
    (A dict of exactly that shape that a handler emitted reads back as a
    string too.)"""
    if _is_escaped(value):
        return os.fsdecode(_unescape(value["escaped"]))
    if isinstance(value, dict):
        return {k: decode_record(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_record(v) for v in value]
    return value


def _clean(text: str) -> bool:
    """Whether text is a JSON string jansson takes as it is."""
    if "\0" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_value(value: Any) -> Any:
    """``value`` ready for :func:`json.dumps` in the audit's form: ``bytes``
    and strings holding surrogate escapes or NUL become ``{"escaped": E}``;
    containers are copied (tuples become lists). ValueError for a string
    with a surrogate :func:`os.fsdecode` never makes, or a dict key that is
    not clean text."""
    if isinstance(value, str):
        if _clean(value):
            return value
        try:
            data = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise ValueError(
                "emit: a string holds a surrogate that is not an escaped byte "
                f"(not from os.fsdecode): {value!r}") from None
        return {"escaped": escape_bytes(data)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _clean(text):
            return text
        return {"escaped": escape_bytes(data)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and not _clean(k):
                raise ValueError(
                    f"emit: a key holds undecodable bytes or NUL: {k!r} (keys "
                    "must be text; put such a value in a value)")
            out[k] = encode_value(v)
        return out
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return value
