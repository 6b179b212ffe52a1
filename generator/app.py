"""App directory → the Dockerfile of a custom runtime on the pinned runtime image.

Does what the flexible environment's Python runtime does for an app: install requirements.txt
into /env, copy the app to /app, start the entrypoint on $PORT. Requirements go in before the
app is copied (so code edits keep the dependency layer cached) unless they point at files of the
app (`./wheels/x.whl`, `-e .`, `file:`), which only exist after the copy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import appyaml, escape, render
from .errors import InputError
from .schedule import Schedule

GUNICORN_CONF = "gunicorn.conf.py"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)  # fullmatch: `$` would let "FOO\n" through
_SERVERS = ("gunicorn", "uwsgi")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class AppError(InputError):
    """A problem with the app directory; nothing was written."""


@dataclass
class AppPlan:
    files: dict[str, str]
    runtime_id: str
    image: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Requirements:
    present: bool
    local_paths: bool
    hashed: bool
    names: frozenset[str]


def read_requirements(path: Path) -> Requirements:
    """What the Dockerfile must know about requirements.txt (not a resolver: pip does that)."""
    if not path.is_file():
        return Requirements(False, False, False, frozenset())
    local = hashed = False
    names = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if "--hash=" in line:
            hashed = True
        tokens = line.split()
        first = tokens[0]
        target = tokens[1] if first in ("-e", "--editable", "-r", "--requirement", "-c", "--constraint") and len(tokens) > 1 else first
        if first.startswith(("-e", "--editable", "-r", "--requirement", "-c", "--constraint")) and target == first:
            target = first.split("=", 1)[-1] if "=" in first else first[2:]
        if _is_local(target) or " @ file:" in line:
            local = True
        m = _REQ_NAME.match(line)
        if m and not first.startswith("-") and not _is_local(first):
            names.add(m.group(1).lower().replace("_", "-"))
    return Requirements(True, local, hashed, frozenset(names))


def _is_local(target: str) -> bool:
    return target.startswith(("./", "../", "/", "file:", "~")) or target in (".", "..") or target.endswith((".whl", ".tar.gz", ".zip"))


def plan_app(
    app_dir: Path,
    schedule: Schedule,
    *,
    config: Path | None = None,
    runtime_image: str | None = None,
    gunicorn_config: bool = False,
    on: dt.date | None = None,
) -> AppPlan:
    """Render the app's Dockerfile, .dockerignore (and gunicorn.conf.py) in memory; raise on any problem."""
    if not app_dir.is_dir():
        raise AppError(f"{app_dir}: not a directory")
    cfg = config or _config_path(app_dir)
    doc = appyaml.load(cfg, str(cfg))
    res = appyaml.resolve(doc, schedule, on or dt.date.today())
    app = doc.data
    warnings = list(res.warnings)

    entrypoint = app.get("entrypoint")
    if entrypoint is None or not entrypoint.strip():
        raise appyaml.AppYamlError(
            str(cfg), "entrypoint: is missing; the runtime needs a command that serves HTTP on $PORT, e.g. gunicorn -b :$PORT main:app"
        )
    reqs = read_requirements(app_dir / "requirements.txt")
    try:
        argv = shlex.split(entrypoint)
    except ValueError as exc:
        raise appyaml.AppYamlError(str(cfg), f"entrypoint: cannot be parsed as a command line: {exc}") from None
    server = next((s for s in _SERVERS if argv and Path(argv[0]).name == s), None)
    if server and server not in reqs.names:
        where = "requirements.txt does not declare it" if reqs.present else "there is no requirements.txt"
        warnings.append(f"{cfg}: entrypoint runs {server} but {where}; the runtime image does not provide it, so add it to requirements.txt")

    files: dict[str, str] = {}
    if gunicorn_config:
        if not (app_dir / GUNICORN_CONF).exists():
            files[GUNICORN_CONF] = render.template("gunicorn.conf.py.j2").render()
        if server == "gunicorn" and not any(a in ("-c", "--config") or a.startswith("--config=") for a in argv):
            entrypoint = re.sub(r"^(\S*gunicorn)\b", rf"\1 -c {GUNICORN_CONF}", entrypoint.strip(), count=1)

    image = runtime_image or res.runtime.image
    repo_name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    if runtime_image and repo_name != res.runtime.id:
        warnings.append(f"--runtime-image {image} is not named after runtime {res.runtime.id}, which {cfg.name} selects; check it is that runtime")
    if "@sha256:" not in image:
        from . import registry

        try:
            image = f"{image}@{registry.current_digest(image, tls_verify=not _insecure(image))}"
        except registry.RegistryError as exc:
            raise AppError(f"cannot pin the runtime image by digest: {exc}; pass --runtime-image NAME:TAG@sha256:…") from None

    env = {"GAE_SERVICE": _service(app, cfg), "PORT": "8080"}
    env.update(_env_variables(app, cfg))
    files["Dockerfile"] = render.template("app.Dockerfile.j2").render(
        image=image,
        runtime=res.runtime,
        config_name=cfg.name,
        env=[f"{k}={_env_value(v)}" for k, v in sorted(env.items())],
        reqs=reqs,
        cmd=json.dumps(["/bin/sh", "-c", f"exec {entrypoint.strip()}"]),
    )
    escape.check_dockerfile(files["Dockerfile"], f"{cfg}: the rendered Dockerfile")
    files[".dockerignore"] = render.template("app.dockerignore.j2").render()
    return AppPlan(files, res.runtime.id, image, warnings)


def write(plan: AppPlan, out: Path) -> list[str]:
    """Write every file atomically; a file the app already has is only replaced by generated ones."""
    written = []
    for rel, content in sorted(plan.files.items()):
        render.write_atomic(out / rel, content)
        written.append(rel)
    return written


def _config_path(app_dir: Path) -> Path:
    env = os.environ.get("GAE_APPLICATION_YAML_PATH")
    if env:
        path = Path(env)
        return path if path.is_absolute() else app_dir / path
    return app_dir / "app.yaml"


def _insecure(image: str) -> bool:
    """Plain-http registries only on this machine (tests, local mirrors)."""
    host = image.split("/", 1)[0]
    return host.startswith(("127.", "localhost"))


def _service(app: dict[str, Any], cfg: Path) -> str:
    service = app.get("service", "default")
    if service is None:
        return "default"
    if not isinstance(service, str) or not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", service):
        raise appyaml.AppYamlError(str(cfg), f"service: {service!r} is not a valid service name (lowercase letters, digits, hyphens)")
    return service


def _env_variables(app: dict[str, Any], cfg: Path) -> dict[str, str]:
    raw = app.get("env_variables") or {}
    if not isinstance(raw, dict):
        raise appyaml.AppYamlError(str(cfg), "env_variables: must be a mapping of NAME: value")
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise appyaml.AppYamlError(str(cfg), f"env_variables.{key}: {key!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise appyaml.AppYamlError(str(cfg), f"env_variables.{key}: {value!r} must be a string")
        text = str(value)
        if len(text) > appyaml.MAX_VALUE:
            raise appyaml.AppYamlError(str(cfg), f"env_variables.{key}: {len(text)} characters; at most {appyaml.MAX_VALUE}")
        if appyaml.CONTROL_CHARS.search(text):
            raise appyaml.AppYamlError(str(cfg), f"env_variables.{key}: holds a control character; values must be one line")
        out[key] = text
    return out


def _env_value(value: str) -> str:
    """Quote for a Dockerfile ENV line: no variable expansion, no line breaks."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
