"""Escapers for each kind of text a value can land in, registered as template filters.

The schema's patterns (generator/core/validate.py) already refuse anything odd in the inputs; these filters
are the second line: each renders a value faithfully into one target (a Dockerfile comment, a
LABEL/ENV value, a JSON value, a Nix string, a Markdown table cell) or refuses it with a
RenderError, so no value can change the structure of a generated file (a newline that adds
Dockerfile instructions, a `$` that Docker expands, a `|` that adds a table column).

Each returns `Escaped`: the template environment (generator/images/render.py) outputs nothing else, so a
`{{ value }}` without a filter of this module fails the render instead of writing the value raw.
"""

from __future__ import annotations

import json
import re
from typing import Any

from generator.core.errors import InputError

# podman/buildah drop a line of 64 KiB or more without a word; keep every generated line far below.
MAX_LINE = 16 * 1024

_PRINTABLE = re.compile(r"[\x20-\x7e]*", re.ASCII)
# Line and paragraph separators and every control character: no target keeps them on one line.
_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # a lone surrogate cannot even be written
_DEB_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.~%_-]*\.deb", re.ASCII)
_BARE = re.compile(r"[A-Za-z0-9._:/@+,=%-]+", re.ASCII)  # needs no quoting in a Dockerfile word


class RenderError(InputError):
    """A value that cannot be written faithfully into a generated file (exit 2: fix the input)."""


class Escaped(str):
    """Text an escaper below made for its target: the only value a template may output."""

    __slots__ = ()


def _one_line(value: Any, target: str) -> str:
    if not isinstance(value, str):
        value = str(value)
    bad = _BREAKING.search(value)
    if bad:
        raise RenderError(f"{value[:60]!r} cannot go into {target}: it holds the control character {bad.group()!r}")
    if len(value) > MAX_LINE // 2:
        raise RenderError(f"a value of {len(value)} characters cannot go into {target} (at most {MAX_LINE // 2})")
    return value


def dockerfile_comment(value: Any) -> Escaped:
    """Text inside a `# …` comment line: printable ASCII only, so it can never start a new line."""
    text = _one_line(value, "a Dockerfile comment")
    if not _PRINTABLE.fullmatch(text):
        raise RenderError(f"{text[:60]!r} cannot go into a Dockerfile comment: only printable ASCII can")
    return Escaped(text)


def docker_word(value: Any) -> Escaped:
    """A bare word of an instruction (ARG default, path, version): nothing a Dockerfile would interpret."""
    text = _one_line(value, "a Dockerfile word")
    if not _BARE.fullmatch(text):
        raise RenderError(f"{text[:60]!r} cannot go into a Dockerfile unquoted: only letters, digits and . _ : / @ + , = % -")
    return Escaped(text)


def deb_filename(pool_path: Any) -> Escaped:
    """The file name of an archive path (pool/…/NAME_VERSION_ARCH.deb) as a shell word: `~` and `%` occur
    in Debian versions and are inert in mid-word, anything else a shell would read is refused."""
    name = _one_line(pool_path, "a .deb file name").rsplit("/", 1)[-1]
    if not _DEB_FILE.fullmatch(name):
        raise RenderError(f"{name[:60]!r} is not a .deb file name (letters, digits and + . ~ % _ -, ending in .deb)")
    return Escaped(name)


def docker_quoted(value: Any) -> Escaped:
    """A LABEL or ENV value in double quotes: `\\`, `"` and `$` escaped, so Docker reads back exactly `value`."""
    text = _one_line(value, "a Dockerfile value")
    return Escaped('"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"')


def docker_env(pair: Any, quote: bool = False) -> Escaped:
    """NAME=value for ENV: the name checked, the value bare when it is one safe word (unless `quote`), else quoted."""
    name, sep, value = _one_line(pair, "an ENV instruction").partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name, re.ASCII):
        raise RenderError(f"{name[:60]!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return Escaped(f"{name}={value if _BARE.fullmatch(value) and not quote else docker_quoted(value)}")


# A FROM reference: a name, tag and digest as the distribution grammar spells them (an IPv6 registry in brackets).
_IMAGE = re.compile(r"[A-Za-z0-9._:/@+\[\]-]+", re.ASCII)


def docker_image(value: Any) -> Escaped:
    """An image reference after FROM: only the characters of the reference grammar, so nothing is expanded or split."""
    text = _one_line(value, "a FROM instruction")
    if not _IMAGE.fullmatch(text):
        raise RenderError(f"{text[:60]!r} cannot go after FROM: only letters, digits and . _ : / @ + - [ ]")
    return Escaped(text)


def integer(value: Any) -> Escaped:
    """A whole number (not a bool): its digits and sign mean nothing to any target, so it is written as is."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise RenderError(f"{value!r:.60} is not a whole number")
    return Escaped(str(value))


def dockerignore_path(value: Any) -> Escaped:
    """A path on one line of a .dockerignore: a line break would add a pattern of its own."""
    return Escaped(_one_line(value, "a .dockerignore line"))


# COPY expands $VAR and ${VAR} and reads each source as a pattern (Go's filepath.Match: * ? [ ], and \
# escapes) in both of its forms, JSON too, in podman/buildah as in Docker. No escape of these is read
# alike by every engine and version, so a name holding one is refused rather than copied as another file.
_COPY_EXPANDED = re.compile(r"[$\\*?\[\]]")
_COPY_BARE = re.compile(r"[A-Za-z0-9._/+@=-]+", re.ASCII)


def docker_copy(paths: Any) -> Escaped:
    """The sources and destination of a COPY, each one exact: bare words where they need no quoting,
    else the JSON form (spaces, quotes); a name COPY would expand or match as a pattern is refused."""
    items = [_one_line(p, "a COPY instruction") for p in paths]
    for p in items:
        bad = _COPY_EXPANDED.search(p)
        if bad:
            raise RenderError(
                f"{p!r} cannot be copied by a Dockerfile COPY: it holds {bad.group()!r}, which COPY expands ($) or reads as a "
                "pattern (\\ * ? [ ]) whatever the quoting; rename it (and the reference to it)"
            )
    if all(_COPY_BARE.fullmatch(p) for p in items):
        return Escaped(" ".join(items))
    return Escaped(json.dumps(items))


def json_value(value: Any) -> Escaped:
    """Any JSON-able value as strict JSON (ASCII, no HTML-style escapes such as \\u0026)."""
    return Escaped(json.dumps(value, ensure_ascii=True, sort_keys=True))


def nix_string(value: Any) -> Escaped:
    """A double-quoted Nix string: `\\`, `"` and `${` escaped (Nix would interpolate it)."""
    text = str(value)
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise RenderError(f"{text[:60]!r} cannot go into a Nix string: it holds a lone surrogate")
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return Escaped('"' + out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"')


def md_cell(value: Any) -> Escaped:
    """Plain text in a Markdown table cell: HTML and Markdown punctuation escaped, `|` too."""
    text = _one_line(value, "a Markdown table cell")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Escaped(re.sub(r"([\\`*_\[\]|#!~])", r"\\\1", text))


def md_code(value: Any) -> Escaped:
    """Text inside a `code span` of a table cell: no backtick can end it, `|` escaped (GFM tables).

    A backslash is refused: GFM splits a row before it reads code spans, so `\\|` would end the cell.
    """
    text = _one_line(value, "a Markdown code span")
    if "`" in text or "\\" in text:
        raise RenderError(f"{text[:60]!r} cannot go into a Markdown code span: it holds a backtick or a backslash")
    return Escaped(text.replace("|", "\\|"))


FILTERS = {
    "dockerfile_comment": dockerfile_comment,
    "docker_word": docker_word,
    "deb_filename": deb_filename,
    "docker_quoted": docker_quoted,
    "docker_env": docker_env,
    "docker_copy": docker_copy,
    "docker_image": docker_image,
    "dockerignore_path": dockerignore_path,
    "integer": integer,
    "json_value": json_value,
    "nix_string": nix_string,
    "md_cell": md_cell,
    "md_code": md_code,
}


def check_text(text: str, name: str) -> str:
    """Any generated file's last check: it can be written as UTF-8 (a lone surrogate cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RenderError(f"{name}: a value holds {text[exc.start]!r}, which cannot be written as UTF-8") from exc
    return text


def check_dockerfile(text: str, name: str) -> str:
    """A rendered Dockerfile's last check: no line an engine would drop or split differently."""
    check_text(text, name)
    for number, line in enumerate(text.split("\n"), 1):
        if len(line.encode("utf-8")) > MAX_LINE:
            raise RenderError(f"{name}:{number}: a line of {len(line.encode('utf-8'))} bytes (at most {MAX_LINE}; podman drops longer ones)")
        bad = _BREAKING.search(line)
        if bad:
            raise RenderError(f"{name}:{number}: holds the control character {bad.group()!r}")
    return text
