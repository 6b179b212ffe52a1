"""What an app's requirements input may point at: only files inside the app directory.

pip follows `-r`/`-c` (and reads `-e`, `file:` and plain paths) wherever they point, and echoes
what it could not parse: `-r /proc/self/environ` would print the environment, tokens included,
in a lock error. So before any resolver runs, every reference is resolved (symlinks too) and
refused unless it stays inside the app directory; nothing of a refused file is read or shown.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from .target import LockInputError

_OPTIONS = {"-r": True, "--requirement": True, "-c": True, "--constraint": True, "-e": False, "--editable": False}
_MAX_FILES = 50  # -r chains (a cycle is caught by `seen`)
_MAX_BYTES = 1024 * 1024


def _targets(line: str) -> list[tuple[str, bool]]:
    """(path or URL, is a requirements file to follow) of each reference on one line."""
    tokens = line.split()
    if not tokens:
        return []
    first = tokens[0]
    for opt, follow in _OPTIONS.items():
        if first == opt:
            return [(tokens[1], follow)] if len(tokens) > 1 else []
        if first.startswith(opt + "=") or (len(opt) == 2 and first.startswith(opt) and len(first) > 2):
            return [(first.split("=", 1)[1] if first.startswith(opt + "=") else first[2:], follow)]
    out = [(m.group(1), False) for m in re.finditer(r"(file:\S+)", line)]
    if not out and (first.startswith(("/", "./", "../", "~")) or first in (".", "..")):
        out.append((first, False))
    return out


def _local_path(target: str, base: Path) -> Path | None:
    """The file a reference names, or None for a remote URL (https://…, git+https://…)."""
    if target.startswith("file:"):
        parsed = urllib.parse.urlparse(target)
        return Path(urllib.parse.unquote(parsed.path)) if parsed.path.startswith("/") else base / urllib.parse.unquote(parsed.path)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", target):
        return None
    path = Path(target).expanduser()
    return path if path.is_absolute() else base / path


def check_references(src: Path, app_dir: Path, where: str = "the app directory") -> None:
    """Refuse (exit 2) a requirements input that reaches outside `app_dir`, following -r/-c chains."""
    root = app_dir.resolve()
    todo, seen = [src], set()
    while todo:
        path = todo.pop()
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        if len(seen) > _MAX_FILES:
            raise LockInputError(f"{src}: more than {_MAX_FILES} requirements files are chained with -r/-c")
        try:
            data = real.read_bytes()[: _MAX_BYTES + 1]
        except OSError as exc:
            raise LockInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if len(data) > _MAX_BYTES:
            raise LockInputError(f"{path}: larger than {_MAX_BYTES // 1024} KiB; this is not a requirements file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise LockInputError(f"{path}:{line}: not UTF-8 text; save it as UTF-8") from None
        for number, raw in enumerate(text.splitlines(), 1):
            line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()
            for target, follow in _targets(line):
                local = _local_path(target, real.parent)
                if local is None:
                    continue
                if not local.resolve().is_relative_to(root):
                    raise LockInputError(
                        f"{path}:{number}: {target!r} is outside {where} {app_dir}; "
                        "a lock may only read files there (copy the file into it, or name a package instead)"
                    )
                if follow:
                    todo.append(local)
