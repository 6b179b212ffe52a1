"""app.yaml → runtime: the rules of the flexible environment's Python runtime.

New style: ``runtime_config.operating_system`` (+ optional ``runtime_version``, default the newest
Python on that OS). Legacy: ``runtime_config.python_version`` (``2``/empty → python2, ``3`` →
python36, ``3.4`` … ``3.7``). Neither → python2. Every refusal names the file, the field, the
value and the valid choices; versions are read as written, so an unquoted 3.10 is 3.10, not 3.1.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.core import yamlsrc
from generator.core.errors import InputError
from generator.schedule.runtimes import END_OF_SUPPORT, Runtime, Schedule

FLEX_ENV = ("flex", "flexible", "2")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # a newline in a value would inject Dockerfile lines
# One Dockerfile line each: podman drops lines of 64 KiB without a word, and shlex is slow on huge text.
MAX_VALUE = 4096
CONFIG_ENV = "GAE_APPLICATION_YAML_PATH"  # the platform's way to name another app.yaml, relative to the app directory


class AppYamlError(InputError):
    """An app.yaml the runtime would refuse; the CLI prints it and exits 2."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


# resolve's way to refuse a field: (its path, what is wrong) → the error to raise
Fail = Callable[[tuple[str, ...], str], AppYamlError]


@dataclass(frozen=True)
class Resolution:
    runtime: Runtime
    status: str
    selected_by: str
    app: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The contract other tools rely on: keep these names."""
        r = self.runtime
        return {
            "end_of_support": r.end_of_support.isoformat(),
            "image": r.image,
            "operating_system": r.os_id,
            "python_version": r.version,
            "runtime_id": r.id,
            "selected_by": self.selected_by,
            "status": self.status,
            "style": r.style,
        }


def load(path: Path | str, display: str | None = None, within: Path | None = None) -> yamlsrc.Document:
    """Read app.yaml (resolving into the app directory `within`, when given); syntax errors and non-mappings become AppYamlError."""
    name = display or str(path)
    try:
        doc = yamlsrc.load(path, name, within, "the app directory")
    except yamlsrc.YamlError as exc:
        raise AppYamlError(exc.file, exc.message, exc.line) from exc
    if doc.data is None:
        raise AppYamlError(name, "the file is empty; it needs at least `runtime: python` and `env: flex`")
    if not isinstance(doc.data, dict):
        raise AppYamlError(name, f"the file must be a YAML mapping of settings, not a {_kind(doc.data)}", doc.line(()))
    return doc


@dataclass(frozen=True)
class Config:
    """The app.yaml of an app directory, and what chose it (said in every error about loading the file)."""

    path: Path
    chosen_by: str  # "named by --config", …
    within: Path | None = None  # the app directory, for a file the app names (None: the user named it)


def find_config(app_dir: Path, option: Path | None = None) -> Config:
    """`--config`, else `$GAE_APPLICATION_YAML_PATH` (relative to the app directory), else APP_DIR/app.yaml.

    The one rule for every command that reads an app directory (`app`, `lock-app`), so they resolve
    the same runtime; `resolve` is given the file itself.
    """
    if option is not None:
        return Config(option, "named by --config")
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if path.is_absolute():
            return Config(path, f"named by ${CONFIG_ENV}")
        return Config(app_dir / path, f"named by ${CONFIG_ENV}, relative to the app directory", app_dir)
    return Config(app_dir / "app.yaml", f"the default: neither --config nor ${CONFIG_ENV} names another file", app_dir)


def load_config(app_dir: Path, option: Path | None = None) -> tuple[Path, yamlsrc.Document]:
    """Find (find_config) and load an app directory's app.yaml; a file that cannot be loaded is named with what chose it."""
    cfg = find_config(app_dir, option)
    try:
        return cfg.path, load(cfg.path, str(cfg.path), cfg.within)
    except AppYamlError as exc:
        raise AppYamlError(exc.file, f"{exc.message} ({cfg.chosen_by})", exc.line) from exc


def resolve(doc: yamlsrc.Document, schedule: Schedule, on: dt.date) -> Resolution:
    app = doc.data

    def fail(path: tuple[str, ...], message: str) -> AppYamlError:
        return AppYamlError(doc.file, f"{'.'.join(path)}: {message}", doc.line(path))

    runtime = app.get("runtime")
    if runtime != "python":
        raise fail(("runtime",), _is(runtime, "not this runtime") + "; valid choices: python")
    env = app.get("env")
    written_env = doc.written_number(("env",))
    if env not in FLEX_ENV and written_env != "2":  # gcloud: 2, flex and flexible all mean the flexible environment
        raise fail(("env",), _is(env, "not the flexible environment") + "; valid choices: flex, flexible, 2")
    if "entrypoint" in app:
        ep = app["entrypoint"]
        if not isinstance(ep, str):
            raise fail(("entrypoint",), _is(ep, "not a string") + "; write the command line as a string")
        ep = app["entrypoint"] = ep.strip()  # a folded `entrypoint: >` ends with a newline; gcloud strips it
        if len(ep) > MAX_VALUE:
            raise fail(("entrypoint",), f"{len(ep)} characters; at most {MAX_VALUE} (put a long command in a script)")
        bad = CONTROL_CHARS.search(ep)
        if bad:
            raise fail(("entrypoint",), f"holds the control character {bad.group()!r}; write the command on one line")

    config = app.get("runtime_config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise fail(("runtime_config",), _is(config, "not a mapping") + "; it holds settings such as operating_system")
    has_os = config.get("operating_system") is not None
    has_pv = "python_version" in config and config["python_version"] not in (None, "")
    if has_os and has_pv:
        raise fail(
            ("runtime_config", "python_version"),
            "cannot be used together with operating_system; use operating_system (+ runtime_version) "
            "for current runtimes, or python_version alone for legacy ones",
        )
    if "runtime_version" in config and not has_os:
        raise fail(("runtime_config", "runtime_version"), "needs runtime_config.operating_system; valid choices: " + _os_list(schedule))

    if has_os:
        runtime_obj, how = _new_style(doc, config, schedule, fail)
    else:
        runtime_obj, how = _legacy(doc, config, schedule, fail)
    status = schedule.status(runtime_obj, on)
    warnings = []
    if status == END_OF_SUPPORT:
        warnings.append(
            f"{doc.file}: runtime {runtime_obj.id} (Python {runtime_obj.version} on {runtime_obj.os_id}) reached its end of "
            f"support on {runtime_obj.end_of_support.isoformat()}; it still resolves, but move to a supported runtime"
        )
    return Resolution(runtime_obj, status, how, app, warnings)


def _new_style(doc: yamlsrc.Document, config: dict[str, Any], schedule: Schedule, fail: Fail) -> tuple[Runtime, str]:
    os_id = config["operating_system"]
    offered = schedule.new_style_os()
    if not isinstance(os_id, str) or os_id not in offered:
        raise fail(("runtime_config", "operating_system"), _is(os_id, "not a known operating system") + f"; valid choices: {_os_list(schedule)}")
    runtimes = offered[os_id]
    if config.get("runtime_version") is None:
        return runtimes[-1], f"runtime_config.operating_system={os_id} (newest Python on it)"
    path = ("runtime_config", "runtime_version")
    value = config["runtime_version"]
    text = doc.written_number(path) or value
    if not isinstance(text, str):
        raise fail(path, _is(value, "not a version") + f"; valid choices on {os_id}: {_minor_list(runtimes)}")
    for r in runtimes:
        if text in (r.minor, r.version):
            return r, f"runtime_config.operating_system={os_id}, runtime_version={text}"
    raise fail(path, f"{text!r} is not offered on {os_id}; valid choices: {_minor_list(runtimes)}")


def _legacy(doc: yamlsrc.Document, config: dict[str, Any], schedule: Schedule, fail: Fail) -> tuple[Runtime, str]:
    legacy = schedule.legacy()
    default = next(r for r in legacy if r.legacy_default)
    path = ("runtime_config", "python_version")
    value = config.get("python_version")
    if value in (None, ""):
        how = "runtime_config.python_version is empty" if "python_version" in config else "no python_version or operating_system set"
        return default, f"{how} (default)"
    text = doc.written_number(path) or value
    choices = {s: r for r in legacy for s in r.python_version_settings}
    if isinstance(text, str) and text in choices:
        return choices[text], f"runtime_config.python_version={text}"
    valid = ", ".join(sorted(choices, key=lambda s: [int(p) for p in s.split(".")]))
    raise fail(path, _is(text, "not a supported Python version") + f"; valid choices: {valid} (or empty for {default.version})")


def _os_list(schedule: Schedule) -> str:
    return ", ".join(schedule.new_style_os())


def _minor_list(runtimes: list[Runtime]) -> str:
    return ", ".join(r.minor for r in runtimes)


def _is(value: Any, what: str) -> str:
    return "is missing" if value is None else f"{value!r} is {what}"


def _kind(value: Any) -> str:
    names: dict[type, str] = {list: "list", str: "string"}
    return names.get(type(value), type(value).__name__)
