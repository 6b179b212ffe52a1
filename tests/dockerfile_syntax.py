"""How a container engine reads a Dockerfile, as far as the hostile-input tests need it.

Follows BuildKit's parser (frontend/dockerfile/parser) and word lexer (frontend/dockerfile/shell),
which buildah/podman's imagebuilder copies: lines split on \\n, comment lines dropped (also inside a
continuation), a trailing backslash joins the next line, and in LABEL/ENV values double quotes
take `\\"`, `\\$` and `\\\\` as escapes while an unescaped `$` outside single quotes is expanded.
Stricter than the engines where it cannot be sure: a carriage return anywhere is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class Unfaithful(AssertionError):
    """The text would not read back as written (a `$` Docker expands, a CR, an open quote)."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    rest: str


def instructions(text: str) -> list[Instruction]:
    if "\r" in text:
        raise Unfaithful("a carriage return in a Dockerfile")
    out: list[Instruction] = []
    buf: str | None = None
    lines = text.split("\n")
    start = 0
    while start < len(lines) and lines[start].startswith("# syntax="):  # parser directives
        start += 1
    for line in lines[start:]:
        stripped = line.strip()
        if buf is None:
            if not stripped or stripped.startswith("#"):
                continue
            buf = line.lstrip()
        elif not stripped or stripped.startswith("#"):
            continue  # empty and comment lines inside a continuation are dropped
        else:
            buf += line
        if buf.rstrip().endswith("\\"):
            buf = buf.rstrip()[:-1]
            continue
        keyword, _, rest = buf.strip().partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip()))
        buf = None
    if buf is not None:
        out.append(Instruction(*buf.strip().partition(" ")[::2]))
    return out


def _words(rest: str) -> list[str]:
    """Split on whitespace outside quotes; quotes and escapes are kept (BuildKit's parseWords)."""
    words, word, quote, i = [], "", None, 0
    while i < len(rest):
        c = rest[i]
        if quote is None and c in " \t":
            if word:
                words.append(word)
            word = ""
        else:
            word += c
            if c == "\\" and quote != "'" and i + 1 < len(rest):
                word += rest[i + 1]
                i += 1
            elif c in "\"'" and quote is None:
                quote = c
            elif c == quote:
                quote = None
        i += 1
    if quote is not None:
        raise Unfaithful(f"unterminated quote in {rest!r}")
    if word:
        words.append(word)
    return words


def word_value(word: str) -> str:
    """The value of one word after BuildKit's ProcessWord, refusing any expansion."""
    out, i, quote = "", 0, None
    while i < len(word):
        c = word[i]
        if quote == "'" and c != "'":
            out += c  # single quotes: every character as it is
        elif c == quote:
            quote = None
        elif quote is None and c in "\"'":
            quote = c
        elif c == "\\" and i + 1 < len(word) and (quote is None or word[i + 1] in '"$\\'):
            out += word[i + 1]  # unquoted, a backslash escapes anything; in double quotes only " $ and itself
            i += 1
        elif c == "$":
            raise Unfaithful(f"Docker would expand the $ in {word!r}")
        else:
            out += c
        i += 1
    return out


def pairs(rest: str) -> dict[str, str]:
    """key=value pairs of a LABEL or ENV instruction, each value as Docker reads it."""
    out = {}
    for word in _words(rest):
        key, sep, value = word.partition("=")
        if not sep:
            raise Unfaithful(f"{word!r} is not key=value")
        out[word_value(key)] = word_value(value)
    return out


def exec_form(rest: str) -> list[str]:
    """CMD/ENTRYPOINT in exec form: JSON, or Docker silently falls back to a shell command."""
    value = json.loads(rest)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise Unfaithful(f"{rest!r} is not a JSON list of strings")
    return value
