"""Reading a file the tool was given: the one gate every user- or repository-supplied file passes.

Why one gate: a file an app or a tree carries may be a symlink out of it (/proc/self/environ,
~/.netrc), a FIFO that never ends, a device, or bytes no parser expects (a NUL, non-UTF-8, JSON
nested 100,000 deep, a key written twice). Each is refused here as an InputError that names the
file as the user wrote it (and its line), before any byte of it reaches a parser, a tool or a
message. `within` is the directory a file must stay in once symlinks are resolved (the app
directory for an app's files, the tree for the repository's); None for a path the user named
on the command line.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from generator.core.errors import InputError

MAX_JSON_DEPTH = 64  # the generator's JSON files nest 6 deep at most
MAX_DATA = 16 * 1024 * 1024  # a lock, a wheels.json, a generated file: far more than any real one
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\],]', re.S)  # what the nesting/duplicate scan needs


class ReadError(InputError):
    """A file that is not read: outside where it belongs, not a regular file, too large, or not text."""

    def __init__(self, name: str, reason: str, line: int | str | None = None, *, missing: bool = False) -> None:
        self.name, self.reason, self.line = name, reason, line  # callers with their own error type re-raise these
        self.missing = missing  # no file there (or a dangling link): callers may say how to make it
        super().__init__(f"{name}:{line}: {reason}" if line else f"{name}: {reason}")


def read_bytes(path: Path, *, within: Path | None, what: str, limit: int, name: str | None = None, where: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; never blocks, never leaves `within`.

    `what` says what the file should be ("a requirements file"), `name` how to show it (default:
    the path as given), `where` how to call `within` ("the app directory").
    """
    shown = name or str(path)
    target = path if within is None else inside(path, within, shown, where or str(within))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    if within is not None:
        flags |= os.O_NOFOLLOW  # resolved above: a link appearing since is not followed
    try:
        fd = os.open(target, flags)
    except FileNotFoundError as exc:
        raise ReadError(shown, "no such file", missing=True) from exc
    except (OSError, ValueError) as exc:
        raise ReadError(shown, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise ReadError(shown, f"is {kind}, not a regular file; {what} must be a file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ReadError(shown, f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if size > limit:
        raise ReadError(shown, f"larger than {limit // 1024} KiB; this is not {what}")
    return b"".join(chunks)


def inside(path: Path, within: Path, shown: str, where: str) -> Path:
    """`path` with every symlink resolved, refused unless it is inside `within` (its content is never read)."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError as exc:
        dangling = os.path.lexists(path)
        raise ReadError(shown, "a symlink to nothing" if dangling else "no such file", missing=True) from exc
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL in the name
        raise ReadError(shown, f"cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from exc
    if not real.is_relative_to(within.resolve()):
        how = "is a symlink to a file" if path.is_symlink() else "is"
        raise ReadError(shown, f"{how} outside {where}; only files inside it are read: copy the file in")
    return real


def decode(data: bytes, name: str, what: str, *, bom: bool = False) -> str:
    """Strict UTF-8 without a NUL; `bom`: a leading byte-order mark is dropped (else it stays in the text)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ReadError(name, f"byte 0x{data[exc.start]:02x} is not UTF-8; {what} must be UTF-8 text", line) from exc
    refuse_nul(text, name, what)
    return text.removeprefix("\ufeff") if bom else text


def refuse_nul(text: str, name: str, what: str) -> None:
    """A NUL ends a C string (and a path): no text file a person writes holds one."""
    at = text.find("\x00")
    if at >= 0:
        raise ReadError(name, f"holds a NUL byte; {what} is text: remove it", text.count("\n", 0, at) + 1)


def read_text(path: Path, *, within: Path | None, what: str, limit: int, name: str | None = None, where: str | None = None, bom: bool = False) -> str:
    """read_bytes, then strict UTF-8 (decode)."""
    return decode(read_bytes(path, within=within, what=what, limit=limit, name=name, where=where), name or str(path), what, bom=bom)


def load_json(path: Path, *, within: Path | None, what: str, limit: int, name: str | None = None, where: str | None = None) -> Any:
    """read_text, then parse_json."""
    shown = name or str(path)
    return parse_json(read_text(path, within=within, what=what, limit=limit, name=shown, where=where), source=shown, limit=limit)


def parse_json(text: str, *, source: str, limit: int | None = None, depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON: no duplicate key, no NaN/Infinity, at most `depth` levels; errors are "FILE:LINE:COL: …"."""
    if limit is not None and len(text) > limit:
        raise ReadError(source, f"larger than {limit // 1024} KiB")
    duplicate = False

    def constant(word: str) -> Any:
        raise ValueError(f"{word} is not a JSON number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicate
        obj = dict(items)
        duplicate = duplicate or len(obj) != len(items)
        return obj

    # The C parser first (the pure-Python _scan costs ~4 ms per 100 KB); _scan only to place a problem it saw.
    try:
        value = json.loads(text, parse_constant=constant, object_pairs_hook=pairs)
    except RecursionError as exc:  # deeper than the interpreter's limit: _scan names the place
        _scan(text, source, depth)
        raise ReadError(source, f"nested more than {depth} levels deep; not a file this tool reads") from exc
    except json.JSONDecodeError as exc:
        _scan(text, source, depth)  # a problem before the syntax error is reported first, as the file reads
        raise ReadError(source, f"not valid JSON ({exc.msg})", f"{exc.lineno}:{exc.colno}") from exc
    except ValueError as exc:  # a constant
        raise ReadError(source, f"not valid JSON ({exc})") from exc
    if duplicate or _deeper_than(value, depth):
        _scan(text, source, depth)
    return value


def _deeper_than(value: Any, depth: int) -> bool:
    """Whether a parsed value nests containers more than `depth` levels (iteratively)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > depth:
                return True
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _scan(text: str, source: str, depth: int) -> None:
    """Nesting depth and duplicate keys, in one pass without recursion (json.loads would recurse, and keep the last key)."""
    stack: list[dict[str, int] | None] = []  # per open container: an object's keys → offset, None for an array
    expect_key = False
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok in "{[":
            if len(stack) >= depth:
                raise ReadError(source, f"nested more than {depth} levels deep; not a file this tool reads", _where(text, m.start()))
            stack.append({} if tok == "{" else None)
            expect_key = tok == "{"
        elif tok in "}]":
            if stack:
                stack.pop()
            expect_key = False
        elif tok == ",":
            expect_key = bool(stack) and stack[-1] is not None
        elif expect_key and stack and stack[-1] is not None:
            expect_key = False
            try:
                key = json.loads(tok)
            except ValueError:
                return  # a broken string: json.loads reports it with its place
            keys = stack[-1]
            if key in keys:
                first = text.count("\n", 0, keys[key]) + 1
                raise ReadError(source, f"duplicate key {key!r} (first on line {first}); keep one", _where(text, m.start()))
            keys[key] = m.start()
        else:
            expect_key = False


def _where(text: str, offset: int) -> str:
    """LINE:COL of an offset, as json's messages count them."""
    return f"{text.count(chr(10), 0, offset) + 1}:{offset - text.rfind(chr(10), 0, offset)}"
