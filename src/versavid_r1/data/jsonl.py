"""Reading a JSONL file row by row without ever failing on its content.

Lines are split on "\\n" only (a file read in binary mode), so a stray carriage return inside a line
does not start a new one and the line numbers are the ones `wc -l`, editors and `sed -n Np` show;
Python's text mode would split on a lone "\\r" too and shift every later number. Each line is decoded
as UTF-8 on its own: an invalid byte is that line's error, not the file's (a UTF-8 byte-order mark on
the first line is skipped). A line nested too deeply for the JSON parser is an error like any other.
"""
from __future__ import annotations

import codecs
import json
import os
from typing import Any, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]
Line = tuple[int, Any, Optional[str]]  # (1-based line number, parsed value or None, error or None)


def parse_line(lineno: int, raw: bytes) -> Optional[Line]:
    """One raw line -> `(line number, value, None)` or `(line number, None, error)`; None when blank."""
    if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return lineno, None, f"invalid UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line"
    if not text.strip():
        return None
    try:
        return lineno, json.loads(text), None
    except json.JSONDecodeError as exc:
        return lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return lineno, None, "invalid JSON: nested too deeply"


def iter_jsonl(path: PathLike) -> Iterator[Line]:
    """`(line number, parsed value or None, error message or None)` for each non-blank line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            parsed = parse_line(lineno, raw)
            if parsed is not None:
                yield parsed


def count_lines(path: PathLike, block: int = 1 << 20) -> int:
    """Number of lines (for a progress bar), counted in 1 MiB blocks."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(block):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")
