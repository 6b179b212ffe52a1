"""YAML loading that keeps what plain loaders throw away.

Both human-edited inputs (schedule.yaml, app.yaml) need errors that point at a line, must refuse
duplicate keys (PyYAML silently keeps the last one), and must see a scalar as it was written:
``runtime_version: 3.10`` is the float 3.1 to YAML, but the user meant "3.10".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}

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


def load(path: Path | str, display: str | None = None) -> Document:
    """Load one YAML document from ``path``; ``display`` is the name used in messages."""
    path = Path(path)
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(name, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(name, f"cannot read: {exc}") from None
    return loads(text, name)


def loads(text: str, name: str) -> Document:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise YamlError(name, f"YAML syntax error: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(name, f"YAML syntax error: {exc}") from None
    doc = Document(name, None)
    if node is not None:
        doc.data = _build(node, (), doc, yaml.constructor.SafeConstructor())
    return doc


def _build(node: yaml.Node, path: YamlPath, doc: Document, ctor: Any) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError(doc.file, "merge keys (<<) are not supported; write the keys out", key_node.start_mark.line + 1)
            key = _build(key_node, path + ("<key>",), doc, ctor)
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
            out[key] = _build(value_node, path + (key,), doc, ctor)
        doc.lines.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, ctor) for i, item in enumerate(node.value)]
    doc.raw[path] = (node.tag, node.value)
    try:
        return ctor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise YamlError(doc.file, f"bad value {node.value!r}: {exc}", node.start_mark.line + 1) from None


def _dotted(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted
