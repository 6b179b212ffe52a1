"""An app's requirements.txt as pip reads it: encodings, nested files, the app's own files.

Not a resolver (pip does that in the build): this finds what the Dockerfile must know before pip
runs. Every file a requirements file names inside the app (`-r`/`-c` files, `--find-links`
directories, local packages, `-e` paths) is copied before the install, so the dependency layer
stays cached while the code changes; a reference outside the app directory cannot be in the build
context and is refused. Files are decoded like pip's `auto_decode`: a BOM decides (UTF-8, UTF-16,
UTF-32), else a `coding:` comment in the first two lines, else UTF-8 (the runtime's locale).
"""

from __future__ import annotations

import codecs
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import InputError

_BOMS = [
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
]
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_PIN = re.compile(r"^==\s*([^\s,;]+)\s*(?:;.*)?$")
_HASH = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.I)
# option → what its value is: a file to follow, a directory/URL to look in, an editable path
_FILE_OPTS = {"-r": "requirement", "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint"}
_VALUE_OPTS = {"-e": "editable", "--editable": "editable", "-f": "find-links", "--find-links": "find-links"}
_INDEX_OPTS = {"-i", "--index-url", "--extra-index-url"}
_FLAG_OPTS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes", "--no-binary", "--only-binary", "--trusted-host", "--use-feature"}


class RequirementsError(InputError):
    """A requirements file pip (or the build context) cannot use; names the file and line."""


@dataclass(frozen=True)
class Pin:
    name: str
    version: str | None  # None: not pinned with ==
    hashes: frozenset[str]
    where: str  # "requirements.txt:3"


@dataclass
class Requirements:
    present: bool
    copy: list[str] = field(default_factory=list)  # app-relative paths the install needs, in order
    names: set[str] = field(default_factory=set)
    pins: list[Pin] = field(default_factory=list)
    local: list[str] = field(default_factory=list)  # "file:line: ref" of local packages / -e paths
    remote: list[str] = field(default_factory=list)  # "file:line: ref" of URL / VCS requirements
    index_url: str | None = None
    formats: list[str] = field(default_factory=list)  # the --no-binary/--only-binary lines, in order: which file pip picks
    hashed: bool = False
    whole_app: bool = False  # a reference to the app directory itself (-e .): install after the whole copy


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def decode(path: Path, display: str) -> str:
    """The text of a requirements file, decoded the way pip decodes it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RequirementsError(f"{display}: cannot read: {exc.strerror or exc}") from None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise RequirementsError(f"{display}: starts with a {encoding} byte-order mark but is not valid {encoding} ({exc.reason})") from None
    encoding = "utf-8"
    for line in data.split(b"\n")[:2]:
        if line.lstrip().startswith(b"#"):
            m = _CODING.search(line)
            if m:
                encoding = m.group(1).decode("ascii")
                break
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise RequirementsError(f"{display}:1: unknown encoding {encoding!r} in its coding comment") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RequirementsError(
            f"{display}:{line}: byte 0x{data[exc.start]:02x} is not {encoding}; pip in the runtime reads a file without a byte-order mark "
            f"as UTF-8: save it as UTF-8, or declare its encoding on the first line (# -*- coding: latin-1 -*-)"
        ) from None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined and comments removed, like pip."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw.strip() or "x"):
            buf.append(raw[:-1])
            continue
        buf.append(raw)
        line = _COMMENT.sub("", " ".join(buf) if len(buf) > 1 else buf[0]).strip()
        buf = []
        if line:
            out.append((start, line))
    if buf:
        line = _COMMENT.sub("", " ".join(buf)).strip()
        if line:
            out.append((start, line))
    return out


def read(app_dir: Path, name: str = "requirements.txt") -> Requirements:
    """Follow requirements.txt and everything it names inside the app directory."""
    root = app_dir.resolve()
    top = root / name
    if not top.is_file():
        return Requirements(False)
    reqs = Requirements(True)
    _read_file(root, top, reqs, seen=set())
    return reqs


def _rel(root: Path, path: Path) -> str | None:
    try:
        return PurePosixPath(path.resolve().relative_to(root)).as_posix()
    except ValueError:
        return None


def _add(reqs: Requirements, rel: str) -> None:
    if rel == ".":
        reqs.whole_app = True
    elif rel not in reqs.copy:
        reqs.copy.append(rel)


def _read_file(root: Path, path: Path, reqs: Requirements, seen: set[Path]) -> None:
    rel = _rel(root, path) or str(path)
    if path.resolve() in seen:
        return
    seen.add(path.resolve())
    _add(reqs, rel)
    text = decode(path, rel)
    for number, line in logical_lines(text):
        where = f"{rel}:{number}"
        try:
            tokens = shlex.split(line, comments=False, posix=True)
        except ValueError as exc:
            raise RequirementsError(f"{where}: cannot be read as pip reads it: {exc}") from None
        if not tokens:
            continue
        if tokens[0].startswith("-"):
            _option(root, path, tokens, where, reqs, seen)
        else:
            _requirement(root, tokens, where, reqs)


def _split_option(tokens: list[str]) -> tuple[str, str | None, list[str]]:
    """`-r x`, `-rx`, `--requirement=x`, `--requirement x` → (option, value, rest)."""
    first = tokens[0]
    if first.startswith("--"):
        opt, eq, value = first.partition("=")
        if eq:
            return opt, value, tokens[1:]
    elif len(first) > 2:
        return first[:2], first[2:], tokens[1:]
    else:
        opt = first
    return opt, (tokens[1] if len(tokens) > 1 else None), tokens[2:]


def _option(root: Path, path: Path, tokens: list[str], where: str, reqs: Requirements, seen: set[Path]) -> None:
    opt, value, rest = _split_option(tokens)
    if opt in _FILE_OPTS:
        if not value:
            raise RequirementsError(f"{where}: {opt} needs a file name")
        if _URL.match(value):
            reqs.remote.append(f"{where}: {opt} {value}")
            return
        target = _inside(root, path.parent / value, where, f"{opt} {value}")
        if not target.is_file():
            raise RequirementsError(f"{where}: {opt} {value}: no such file in the app ({_rel(root, target)})")
        _read_file(root, target, reqs, seen)
    elif opt in _VALUE_OPTS:
        if not value:
            raise RequirementsError(f"{where}: {opt} needs a value")
        if _URL.match(value) or _VCS.match(value):
            reqs.remote.append(f"{where}: {opt} {value}")
            return
        if value.startswith("file:"):
            value = _file_url_path(value, where)
        if opt in ("-f", "--find-links"):
            beside = path.parent / value
            candidate = beside if beside.exists() else root / value
        else:
            candidate = root / _strip_extras(value)
            reqs.local.append(f"{where}: {opt} {value}")
        target = _inside(root, candidate, where, f"{opt} {value}")
        if not target.exists():
            raise RequirementsError(f"{where}: {opt} {value}: no such file or directory in the app ({_rel(root, target)})")
        _add(reqs, _rel(root, target) or value)
        if rest:
            _hashes(rest, where, reqs)
    elif opt in _INDEX_OPTS:
        if opt != "--extra-index-url" and value:
            reqs.index_url = value
    elif opt == "--hash":
        raise RequirementsError(f"{where}: --hash must follow a requirement on the same line")
    elif opt in ("--no-binary", "--only-binary") and value:
        reqs.formats.append(f"{opt} {value}")
    # other options (--no-index, --pre, --only-binary, …) change how pip installs, not what the build needs


def _strip_extras(value: str) -> str:
    return re.sub(r"\[[^\]]*\]$", "", value)


def _file_url_path(url: str, where: str) -> str:
    """file:///app/x (the container's path of the app) or file:./x → an app-relative path."""
    rest = url[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        host, _, rest = rest.partition("/")
        if host not in ("", "localhost"):
            raise RequirementsError(f"{where}: {url}: a file URL on another host")
        rest = "/" + rest
    if rest.startswith("/"):
        if rest == "/app" or rest.startswith("/app/"):
            return "." + rest[len("/app") :] if rest != "/app" else "."
        raise RequirementsError(
            f"{where}: {url} is an absolute path outside the app; the image only has the app directory (at /app): "
            "move the package into the app and name it relative to it (./pkg)"
        )
    return rest


def _inside(root: Path, candidate: Path, where: str, ref: str) -> Path:
    resolved = candidate.resolve()
    if _rel(root, resolved) is None:
        raise RequirementsError(
            f"{where}: {ref} points outside the app directory ({resolved}); only the app directory is in the build context: "
            "move it into the app, or build the package into a wheel inside the app"
        )
    return resolved


def _looks_like_path(spec: str) -> bool:
    """pip's rule: a path separator or a leading dot, or an archive's file name."""
    base = _strip_extras(spec.split(";", 1)[0].strip())
    return "/" in base or "\\" in base or base.startswith(".") or base.lower().endswith(_ARCHIVES)


def _requirement(root: Path, tokens: list[str], where: str, reqs: Requirements) -> None:
    args = []
    opts = []
    for i, tok in enumerate(tokens):
        if tok.startswith("--"):
            opts = tokens[i:]
            break
        args.append(tok)
    spec = " ".join(args)
    _hashes(opts, where, reqs)
    hashes = frozenset(h for o in opts for h in _HASH.findall(o.partition("=")[2] if "=" in o else ""))
    if _URL.match(spec) or _VCS.match(spec) or spec.startswith("file:"):
        if spec.startswith("file:"):
            _local(root, _file_url_path(spec.split()[0], where), where, reqs, spec)
        else:
            reqs.remote.append(f"{where}: {spec}")
        return
    if _looks_like_path(spec) and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@", spec):
        _local(root, args[0], where, reqs, spec)
        return
    m = _NAME.match(spec)
    if not m:
        raise RequirementsError(f"{where}: {spec!r} is not a requirement pip can read (NAME, NAME==VERSION, a path or a URL)")
    name, rest = m.group(1), m.group(3).strip()
    reqs.names.add(canonical(name))
    if rest.startswith("@"):
        url = rest[1:].strip().split(";", 1)[0].strip()
        if url.startswith("file:"):
            _local(root, _file_url_path(url, where), where, reqs, spec)
        else:
            reqs.remote.append(f"{where}: {spec}")
        return
    pin = _PIN.match(rest)
    reqs.pins.append(Pin(canonical(name), pin.group(1) if pin else None, hashes, where))


def _local(root: Path, ref: str, where: str, reqs: Requirements, spec: str) -> None:
    target = _inside(root, root / _strip_extras(ref.split(";", 1)[0].strip()), where, ref)
    if not target.exists():
        raise RequirementsError(f"{where}: {ref}: no such file or directory in the app ({_rel(root, target)})")
    _add(reqs, _rel(root, target) or ref)
    reqs.local.append(f"{where}: {spec}")


def _hashes(opts: list[str], where: str, reqs: Requirements) -> None:
    for opt in opts:
        if opt.startswith("--hash"):
            reqs.hashed = True
            value = opt.partition("=")[2]
            if value and not value.startswith("sha256:") and ":" not in value:
                raise RequirementsError(f"{where}: {opt} is not ALGORITHM:HEX (e.g. --hash=sha256:…)")


def hermetic_problems(reqs: Requirements) -> list[str]:
    """Why these requirements cannot be fetched on the host and installed offline (empty: they can)."""
    problems = []
    for pin in reqs.pins:
        if pin.version is None:
            problems.append(f"{pin.where}: {pin.name} is not pinned with ==")
        elif not pin.hashes:
            problems.append(f"{pin.where}: {pin.name}=={pin.version} has no --hash")
    problems += [f"{r} is a URL or VCS requirement; only index packages with hashes are fetched" for r in reqs.remote]
    problems += [f"{r} is a local package; pip --require-hashes cannot check a directory: build it into a wheel" for r in reqs.local]
    return problems


def lock_text(reqs: Requirements) -> str:
    """The pins as a hash-locked text (one line each, after the --no-binary/--only-binary lines), the form the lock module's file picker reads."""
    lines = list(reqs.formats)
    for pin in sorted(reqs.pins, key=lambda p: p.name):
        lines.append(f"{pin.name}=={pin.version} " + " ".join(f"--hash=sha256:{h.lower()}" for h in sorted(pin.hashes)))
    return "\n".join(lines) + "\n"


def require_utf8(app_dir: Path) -> None:
    """lock-app reads requirements.in/.txt as UTF-8: refuse any other encoding with the fix, not a traceback."""
    for name in ("requirements.in", "requirements.txt"):
        path = app_dir / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            found = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
            what = f"is {found} (what PowerShell's `pip freeze >` writes)" if found else f"is not UTF-8 (byte 0x{data[exc.start]:02x})"
            raise RequirementsError(f"{path}: {what}; lock-app reads UTF-8: save it as UTF-8 and run it again") from None
