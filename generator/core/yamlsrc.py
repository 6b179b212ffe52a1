"""YAML loading that keeps what plain loaders throw away.

Both human-edited inputs (schedule.yaml, app.yaml) need errors that point at a line, must refuse
duplicate keys (PyYAML silently keeps the last one), and must see a scalar as it was written:
``runtime_version: 3.10`` is the float 3.1 to YAML, but the user meant "3.10".

Loading has a budget, checked before anything is built: a file of at most MAX_BYTES, nesting at most
MAX_DEPTH deep, and at most MAX_NODES values once aliases are expanded (a few KB of nested aliases
would otherwise expand to gigabytes; an alias inside its own anchor would never end). A file over
budget is refused in milliseconds with its line; RecursionError and MemoryError never escape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.core import readfile
from generator.core.errors import InputError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
MAX_BYTES = 1024 * 1024  # the schedule is ~6 KB, an app.yaml far less
MAX_DEPTH = 32  # nested mappings/lists
MAX_NODES = 20_000  # values after alias expansion
MAX_ALIASES = 1_000

YamlPath = tuple[Any, ...]


class YamlError(InputError):
    """A problem in a YAML file, located as precisely as we can."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        self.file, self.line, self.message = file, line, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


@dataclass
class Document:
    """Plain Python data plus, per path, its line and the scalar text as written."""

    file: str
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)
    raw: dict[YamlPath, tuple[str, str]] = field(default_factory=dict)

    def line(self, path: YamlPath) -> int | None:
        """Line of the deepest known prefix of ``path`` (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def written_number(self, path: YamlPath) -> str | None:
        """The text of an unquoted number at ``path`` exactly as written, else None."""
        tag, text = self.raw.get(path, ("", ""))
        return text if tag in _NUMBER_TAGS else None


def load(path: Path | str, display: str | None = None, within: Path | None = None, where: str | None = None) -> Document:
    """Load one YAML document from ``path``; ``display`` is the name used in messages, ``within``
    the directory it must resolve into (readfile.py; None: a path the user named)."""
    path = Path(path)
    name = display or str(path)
    try:
        data = readfile.read_bytes(path, within=within, what="a configuration file", limit=MAX_BYTES, name=name, where=where)
    except readfile.ReadError as exc:
        raise YamlError(name, "file not found" if exc.missing and exc.reason == "no such file" else exc.reason) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(name, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8", line) from exc
    return loads(text, name)


def loads(text: str, name: str) -> Document:
    if len(text) > MAX_BYTES:
        raise YamlError(name, f"larger than {MAX_BYTES // 1024} KiB; this is not a configuration file")
    try:
        _check_shape(text, name)
        node = yaml.compose(text, Loader=_Loader)
        doc = Document(name, None)
        if node is not None:
            doc.data = _build(node, (), doc, yaml.constructor.SafeConstructor(), [0])
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise YamlError(name, f"YAML syntax error: {problem}", mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlError(name, f"YAML syntax error: {exc}") from exc
    except (RecursionError, MemoryError) as exc:  # the checks above should make these unreachable: still no traceback
        raise YamlError(name, "too deeply nested or too large to load") from exc


def _check_shape(text: str, name: str) -> None:
    """Depth and alias count from the event stream (iterative: no recursion, no tree built yet)."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError(name, f"nested more than {MAX_DEPTH} levels deep; flatten it", _line(event))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlError(name, f"more than {MAX_ALIASES} aliases (*name); write the values out", _line(event))


def _line(event: yaml.Event) -> int | None:
    """The 1-based line an event starts on (the parser always marks one; the stubs allow None)."""
    return event.start_mark.line + 1 if event.start_mark else None


def _build(node: yaml.Node, path: YamlPath, doc: Document, ctor: Any, count: list[int], depth: int = 0) -> Any:
    count[0] += 1
    if count[0] > MAX_NODES or depth > MAX_DEPTH:
        what = f"more than {MAX_NODES} values" if count[0] > MAX_NODES else f"nested more than {MAX_DEPTH} levels deep"
        raise YamlError(
            doc.file, f"{what} once aliases are expanded (an alias inside its own anchor, or aliases of aliases)", node.start_mark.line + 1
        )
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError(doc.file, "merge keys (<<) are not supported; write the keys out", key_node.start_mark.line + 1)
            key = _build(key_node, path + ("<key>",), doc, ctor, count, depth + 1)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise YamlError(doc.file, "mapping keys must be plain scalars", key_node.start_mark.line + 1)
            if key in out:
                first = doc.lines.get(path + (key,))
                raise YamlError(
                    doc.file,
                    f"duplicate key {_dotted(path + (key,))!r} (first defined on line {first}); keep one",
                    key_node.start_mark.line + 1,
                )
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, path + (key,), doc, ctor, count, depth + 1)
        doc.lines.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, ctor, count, depth + 1) for i, item in enumerate(node.value)]
    doc.raw[path] = (node.tag, node.value)
    where = _dotted(path).replace(".<key>", " (a key)") or "(top level)"
    try:
        value = ctor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # 2027-02-29 is a ValueError, not a YAMLError
        problem = str(exc).split("\n")[-1] if isinstance(exc, yaml.YAMLError) else str(exc)
        what = "date" if node.tag == "tag:yaml.org,2002:timestamp" else "value"
        raise YamlError(doc.file, f"{where}: {node.value!r} is not a valid {what} ({problem})", node.start_mark.line + 1) from exc
    if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
        raise YamlError(doc.file, f"{where}: {node.value!r} is not a number a setting can have; quote it if it is text", node.start_mark.line + 1)
    if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
        raise YamlError(doc.file, f"{where}: holds a lone surrogate escape, which no file can hold as UTF-8", node.start_mark.line + 1)
    return value


def _dotted(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted
