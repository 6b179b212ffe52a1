"""An app's requirements files as pip reads them: encodings, nested files, what they may name.

The one reader of requirements files, for `app` (pip reads them in the image, the app at /app) and
for `lock-app` and `lock` (the resolvers read them on this host). Not a resolver: it finds what must
be known before pip runs. Every file a requirements file names (`-r`/`-c` files, `--find-links`
directories and `file:` indexes, local packages, `-e` paths) must be inside the directory being
read, symlinks resolved: the app's build context holds only the app directory, and pip echoes what
it cannot parse (`-r /proc/self/environ` would print the environment in a lock error). A refused
file is neither read nor shown. Files are decoded like pip's `auto_decode`: a BOM decides (UTF-8,
UTF-16, UTF-32), else a `coding:` comment in the first two lines, else UTF-8 (the runtime's locale).
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from generator.core import readfile
from generator.core.errors import InputError

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
MAX_FILES = 50  # -r/-c chains (a cycle is caught by `seen`)
MAX_BYTES = 1024 * 1024  # per file: a requirements file is text a person wrote


class RequirementsError(InputError):
    """A requirements file pip (or the build context) cannot use; names the file and line."""


@dataclass(frozen=True)
class Reader:
    """Who reads the files, and so what a reference may name and which encodings are understood."""

    label: str  # the directory being read, in messages
    runs_at: str | None  # that directory's absolute path where pip reads the files (/app in the image); None: where it is here
    encodings: frozenset[str] | None  # the encodings every tool that reads the files decodes; None: all of pip's
    why: str  # why a reference outside the directory is refused, with the fix


_BUILD_CONTEXT = "only the app directory is in the build context: move it into the app, or build the package into a wheel inside the app"
# pip in the image, reading /app/requirements.txt (`app`)
IMAGE = Reader("the app directory", "/app", None, _BUILD_CONTEXT)
# pip-compile, uv and pip on this host, in the app directory (`lock-app`); uv reads UTF-8 and UTF-16 with a BOM only
LOCK = Reader("the app directory", None, frozenset({"utf-8", "utf-16-le", "utf-16-be"}), _BUILD_CONTEXT)
# the same tools reading a runtime's lockfiles/<id>.in (`lock`)
LOCK_DIR = Reader("the lock directory", None, LOCK.encodings, "a lock may only read files there: copy the file into it, or name a package")


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


@dataclass
class _Walk:
    """One read: the directory, who reads it, what was found, the files already followed."""

    root: Path
    reader: Reader
    reqs: Requirements
    seen: set[Path] = field(default_factory=set)
    chain: list[str] = field(default_factory=list)  # the -r/-c files being read, outermost first


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def decode(path: Path, display: str, within: Path | None = None) -> str:
    """The text of a requirements file (inside `within`, default its directory), decoded the way pip decodes it."""
    text = _decode(_read_bytes(path, display, path.parent if within is None else within), display)[0]
    _no_nul(text, display)
    return text


def _read_bytes(path: Path, display: str, within: Path, where: str = "the app directory") -> bytes:
    """readfile's gate: a regular file inside `within`, symlinks resolved, at most MAX_BYTES."""
    try:
        return readfile.read_bytes(path, within=within, what="a requirements file", limit=MAX_BYTES, name=display, where=where)
    except readfile.ReadError as exc:
        raise RequirementsError(str(exc)) from exc


def _no_nul(text: str, display: str) -> None:
    try:
        readfile.refuse_nul(text, display, "a requirements file")
    except readfile.ReadError as exc:
        raise RequirementsError(str(exc)) from exc


def _decode(data: bytes, display: str) -> tuple[str, str]:
    """(text, the encoding it was read with), by pip's rules."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise RequirementsError(f"{display}: starts with a {encoding} byte-order mark but is not valid {encoding} ({exc.reason})") from exc
    encoding = "utf-8"
    for line in data.split(b"\n")[:2]:
        if line.lstrip().startswith(b"#"):
            m = _CODING.search(line)
            if m:
                encoding = m.group(1).decode("ascii")
                break
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError as exc:
        raise RequirementsError(f"{display}:1: unknown encoding {encoding!r} in its coding comment") from exc
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise RequirementsError(
            f"{display}:{lineno}: byte 0x{data[exc.start]:02x} is not {encoding}; pip in the runtime reads a file without a byte-order mark "
            f"as UTF-8: save it as UTF-8, or declare its encoding on the first line (# -*- coding: latin-1 -*-)"
        ) from exc


def _understood(reader: Reader, data: bytes, encoding: str, display: str) -> None:
    """Refuse an encoding pip reads but another tool of this reader does not (uv: no UTF-32, no coding comment)."""
    if reader.encodings is None or encoding in reader.encodings:
        return
    try:
        data.decode("utf-8")  # a coding comment on a file that is UTF-8 anyway (ASCII, say) is read alike by all
        return
    except UnicodeDecodeError:
        pass
    how = "by its byte-order mark" if any(data.startswith(bom) for bom, _ in _BOMS) else "by its coding comment"
    raise RequirementsError(
        f"{display}: is {encoding} ({how}); pip reads that, but uv, one of lock's resolvers, reads only UTF-8 and UTF-16 with a "
        "byte-order mark: save it as UTF-8 and run it again"
    )


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


def read(app_dir: Path, name: str = "requirements.txt", reader: Reader = IMAGE) -> Requirements:
    """Follow `name` (in `app_dir`) and everything it names, refusing any reference outside `app_dir`.

    `reader` says who reads the files: pip in the image (IMAGE, for `app`), or the lock's resolvers
    on this host (LOCK for `lock-app`, LOCK_DIR for `lock`). Raises RequirementsError (exit 2).
    """
    root = app_dir.resolve()
    top = root / name
    if not os.path.lexists(top):
        return Requirements(False)
    walk = _Walk(root, reader, Requirements(True))
    _read_file(walk, top, name)  # a link out of the directory, a FIFO, a directory: refused by readfile, unread
    return walk.reqs


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


def _read_file(w: _Walk, path: Path, shown: str | None = None) -> None:
    real = path.resolve()
    rel = _rel(w.root, real) or shown or str(path)
    if real in w.seen:
        return
    if len(w.seen) >= MAX_FILES:
        raise RequirementsError(f"{rel}: more than {MAX_FILES} requirements files are chained with -r/-c ({chain_text([*w.chain, rel])})")
    data = _read_bytes(path, shown or rel, w.root, w.reader.label)
    w.seen.add(real)
    w.chain.append(rel)
    try:
        _read_lines(w, path, data, rel)
    finally:
        w.chain.pop()


def chain_text(names: list[str]) -> str:
    """A chain of files for a message: a -> b -> c, its middle elided when long."""
    shown = names if len(names) <= 6 else [*names[:3], "…", *names[-2:]]
    return " -> ".join(shown)


def _read_lines(w: _Walk, path: Path, data: bytes, rel: str) -> None:
    _add(w.reqs, rel)
    text, encoding = _decode(data, rel)
    _no_nul(text, rel)
    _understood(w.reader, data, encoding, rel)
    for number, line in logical_lines(text):
        where = f"{rel}:{number}"
        try:
            tokens = shlex.split(line, comments=False, posix=True)
        except ValueError as exc:
            raise RequirementsError(f"{where}: cannot be read as pip reads it: {exc}") from exc
        if not tokens:
            continue
        if tokens[0].startswith("-"):
            _option(w, path, tokens, where)  # relative to the file as named, as pip does
        else:
            _requirement(w, tokens, where)


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


def _option(w: _Walk, path: Path, tokens: list[str], where: str) -> None:
    opt, value, rest = _split_option(tokens)
    if opt in _FILE_OPTS:
        _file_option(w, path, opt, value, where)
    elif opt in _VALUE_OPTS:
        _value_option(w, path, opt, value, rest, where)
    elif opt in _INDEX_OPTS:
        _index_option(w, opt, value, where)
    elif opt == "--hash":
        raise RequirementsError(f"{where}: --hash must follow a requirement on the same line")
    elif opt in ("--no-binary", "--only-binary") and value:
        w.reqs.formats.append(f"{opt} {value}")
    # other options (--no-index, --pre, --only-binary, …) change how pip installs, not what the build needs


def _file_option(w: _Walk, path: Path, opt: str, value: str | None, where: str) -> None:
    """-r/-c FILE: a remote one is noted; a file of the app is read in turn."""
    if not value:
        raise RequirementsError(f"{where}: {opt} needs a file name")
    if _URL.match(value) and not value.startswith("file:"):
        w.reqs.remote.append(f"{where}: {opt} {value}")
        return
    ref = _file_url_path(w, value, where) if value.startswith("file:") else value
    target = _target(w, ref, path.parent, where, f"{opt} {value}")
    if not target.is_file():
        raise RequirementsError(f"{where}: {opt} {value}: no such file in the app ({_rel(w.root, target)})")
    _read_file(w, target)


def _value_option(w: _Walk, path: Path, opt: str, value: str | None, rest: list[str], where: str) -> None:
    """-e/-f and the like: a path of the app is copied into the build; a URL or VCS reference is remote."""
    reqs = w.reqs
    if not value:
        raise RequirementsError(f"{where}: {opt} needs a value")
    if (_URL.match(value) and not value.startswith("file:")) or _VCS.match(value):
        reqs.remote.append(f"{where}: {opt} {value}")
        return
    ref = _file_url_path(w, value, where) if value.startswith("file:") else value
    if opt in ("-f", "--find-links"):  # pip: relative to the file naming it where that exists, else to the working directory
        target = _target(w, ref, path.parent if (path.parent / ref).exists() else w.root, where, f"{opt} {value}")
    else:
        target = _target(w, _strip_extras(ref), w.root, where, f"{opt} {value}")
        reqs.local.append(f"{where}: {opt} {value}")
    if not target.exists():
        raise RequirementsError(f"{where}: {opt} {value}: no such file or directory in the app ({_rel(w.root, target)})")
    _add(reqs, _rel(w.root, target) or value)
    if rest:
        _hashes(rest, where, reqs)


def _index_option(w: _Walk, opt: str, value: str | None, where: str) -> None:
    """--index-url/--extra-index-url: a file: index is a directory of the app, copied like --find-links."""
    if value and value.startswith("file:"):  # a local index: a directory pip reads, like --find-links
        target = _target(w, _file_url_path(w, value, where), w.root, where, f"{opt} {value}")
        if not target.is_dir():
            raise RequirementsError(f"{where}: {opt} {value}: no such directory in the app ({_rel(w.root, target)})")
        _add(w.reqs, _rel(w.root, target) or value)
    if opt != "--extra-index-url" and value:
        w.reqs.index_url = value


def _strip_extras(value: str) -> str:
    return re.sub(r"\[[^\]]*\]$", "", value)


def _file_url_path(w: _Walk, url: str, where: str) -> str:
    """file:///app/x (the image's path of the app), file:///abs/x (a path on this host, for a lock) or file:./x → a path."""
    rest = urllib.parse.unquote(url[len("file:") :])
    if rest.startswith("//"):
        rest = rest[2:]
        host, _, rest = rest.partition("/")
        if host not in ("", "localhost"):
            raise RequirementsError(f"{where}: {url}: a file URL on another host")
        rest = "/" + rest
    at = w.reader.runs_at
    if at is not None and rest.startswith("/") and rest != at and not rest.startswith(at + "/"):
        raise RequirementsError(
            f"{where}: {url} is an absolute path outside the app; the image only has the app directory (at {at}): "
            "move the package into the app and name it relative to it (./pkg)"
        )
    return rest


def _target(w: _Walk, ref: str, base: Path, where: str, shown: str) -> Path:
    """The file or directory on this host a reference names (relative to `base`), refused unless inside the directory read."""
    at = w.reader.runs_at
    if at is not None and ref.startswith("/"):  # a path in the image: only the app's own (at /app) is there
        if ref != at and not ref.startswith(at + "/"):
            raise RequirementsError(f"{where}: {shown} points outside {w.reader.label} ({ref}); {w.reader.why}")
        candidate = w.root / ref[len(at) :].lstrip("/")
    else:
        candidate = base / ref  # an absolute ref stays itself
    resolved = candidate.resolve()
    if _rel(w.root, resolved) is None:
        raise RequirementsError(f"{where}: {shown} points outside {w.reader.label} ({resolved}); {w.reader.why}")
    return resolved


def _looks_like_path(spec: str) -> bool:
    """pip's rule: a path separator or a leading dot, or an archive's file name."""
    base = _strip_extras(spec.split(";", 1)[0].strip())
    return "/" in base or "\\" in base or base.startswith(".") or base.lower().endswith(_ARCHIVES)


def _requirement(w: _Walk, tokens: list[str], where: str) -> None:
    reqs = w.reqs
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
            _local(w, _file_url_path(w, spec.split()[0], where), where, spec)
        else:
            reqs.remote.append(f"{where}: {spec}")
        return
    if _looks_like_path(spec) and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@", spec):
        _local(w, args[0], where, spec)
        return
    m = _NAME.match(spec)
    if not m:
        raise RequirementsError(f"{where}: {spec!r} is not a requirement pip can read (NAME, NAME==VERSION, a path or a URL)")
    name, rest = m.group(1), m.group(3).strip()
    reqs.names.add(canonical(name))
    if rest.startswith("@"):
        url = rest[1:].strip().split(";", 1)[0].strip()
        if url.startswith("file:"):
            _local(w, _file_url_path(w, url, where), where, spec)
        else:
            reqs.remote.append(f"{where}: {spec}")
        return
    pin = _PIN.match(rest)
    reqs.pins.append(Pin(canonical(name), pin.group(1) if pin else None, hashes, where))


def _local(w: _Walk, ref: str, where: str, spec: str) -> None:
    target = _target(w, _strip_extras(ref.split(";", 1)[0].strip()), w.root, where, ref)
    if not target.exists():
        raise RequirementsError(f"{where}: {ref}: no such file or directory in the app ({_rel(w.root, target)})")
    _add(w.reqs, _rel(w.root, target) or ref)
    w.reqs.local.append(f"{where}: {spec}")


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
