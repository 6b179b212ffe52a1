"""Every `{{ … }}` of every template passes the escaper of its target: checked statically and at render time.

Statically, each output expression of each template file must end in a filter of generator/core/escape.py;
at render time, the environment's finalize hook refuses any value an escaper did not make, so a
`{{ value }}` added without a filter fails the command (exit 1, the template and line named) instead of
writing the value raw.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from jinja2 import nodes

from generator.core import escape, paths
from generator.images import render
from tests.conftest import ROOT, copy_tree

TEMPLATES = ROOT / "generator" / "templates"
APPS = Path(__file__).resolve().parents[1] / "apps"
DIGEST = "@sha256:" + "0123456789abcdef" * 4
IMAGES = (
    "--runtime-image",
    "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15" + DIGEST,
    "--build-image",
    "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15-build" + DIGEST,
)
# The command that renders each template; a new template must be added here (the test below says so).
RENDERED_BY = {
    "Dockerfile.j2": "generate",
    "build-image.Dockerfile.j2": "generate",
    "install-debs.Dockerfile.j2": "generate",
    "interpreter.Dockerfile.j2": "generate",
    "support-matrix.md.j2": "generate",
    "app.Dockerfile.j2": "app",
    "app.dockerignore.j2": "app",
    "gunicorn.conf.py.j2": "app",
}


def unescaped_outputs(env: jinja2.Environment, name: str) -> list[str]:
    """`file:line: expression` of each output not ending in an escaper, and of each block that writes without one."""
    source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    tree = env.parse(source, name)
    bad = []
    for out in tree.find_all(nodes.Output):
        for child in out.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            line = source.splitlines()[child.lineno - 1].strip()
            comment = "Dockerfile" in name and line.startswith("#")  # a Dockerfile comment line has a filter of its own
            if not (isinstance(child, nodes.Filter) and child.name in (["dockerfile_comment"] if comment else escape.FILTERS)):
                bad.append(f"{name}:{child.lineno}: {line}")
    # {% filter %} and {% call %} write what their body or callee returns without the finalize hook
    bad += [f"{name}:{b.lineno}: a {type(b).__name__} writes without the escaping check" for b in tree.find_all((nodes.FilterBlock, nodes.CallBlock))]
    return bad


def test_every_template_is_checked_and_rendered_here() -> None:
    on_disk = sorted(p.name for p in TEMPLATES.iterdir() if p.is_file() and p.name != "__init__.py")
    assert sorted(render._env().list_templates()) == on_disk
    assert sorted(RENDERED_BY) == on_disk, "add the new template to RENDERED_BY (the command that renders it)"


@pytest.mark.parametrize("name", sorted(RENDERED_BY))
def test_every_output_ends_in_an_escaper(name: str) -> None:
    assert unescaped_outputs(render._env(), name) == []


def test_the_static_check_sees_a_missing_filter() -> None:
    source = "a {{ x | docker_word }} {{ x }}\n{{ x | docker_word | upper }}\n{% filter upper %}{% endfilter %}\n# {{ x | docker_word }}\n"
    env = render._env().overlay(loader=jinja2.DictLoader({"t.Dockerfile": source}))
    assert unescaped_outputs(env, "t.Dockerfile") == [
        "t.Dockerfile:1: a {{ x | docker_word }} {{ x }}",
        "t.Dockerfile:2: {{ x | docker_word | upper }}",
        "t.Dockerfile:4: # {{ x | docker_word }}",
        "t.Dockerfile:3: a FilterBlock writes without the escaping check",
    ]


def test_every_escaper_returns_the_marker() -> None:
    samples = {"docker_copy": ["a", "/app/a"], "docker_env": "A=b", "deb_filename": "pool/a_1_all.deb", "integer": 3}
    for name, f in escape.FILTERS.items():
        assert type(f(samples.get(name, "a"))) is escape.Escaped, name


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("{{ value }}", "x; rm -rf /"),
        ("{{ value }}", 8080),  # an int too: every value names its target's filter (`integer` for numbers)
        ("{{ value | upper }}", "x"),  # a filter, but not an escaper
        ("{{ value | docker_word ~ value }}", "x"),  # an escaper's output joined with a raw value
        ("{% macro m(v) %}{{ v | docker_word }}{% endmacro %}{{ m(value) }}", "x"),  # a macro returns plain text
    ],
)
def test_the_environment_refuses_an_unescaped_value(source: str, value: object) -> None:
    with pytest.raises(render.GeneratorError, match=r"outputs .* without an escaping filter") as caught:
        render._env().from_string(source).render(value=value)
    assert caught.value.exit_code == 1  # a bug of the template, not of the input


def test_the_environment_writes_what_an_escaper_made() -> None:
    text = render._env().from_string("{{ a | docker_word }} {{ n | integer }} {{ a | docker_quoted }}").render(a="x", n=3)
    assert text == 'x 3 "x"'


@pytest.mark.parametrize("name", sorted(RENDERED_BY))
def test_an_unfiltered_interpolation_added_to_a_template_fails_its_command(name: str, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real template plus one `{{ … }}` without a filter, rendered by the command that renders it."""
    base = render._env()
    source = base.loader.get_source(base, name)[0]  # type: ignore[union-attr]
    env = base.overlay(loader=jinja2.ChoiceLoader([jinja2.DictLoader({name: source + '{{ "raw" }}\n'}), base.loader]))  # type: ignore[arg-type]
    monkeypatch.setattr(render, "_env", lambda: env)
    if RENDERED_BY[name] == "generate":
        tree = copy_tree(tmp_path / "tree")
        before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
        result = cli("generate", schedule=tree / paths.SCHEDULE)
        assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before  # nothing written
    else:
        out = tmp_path / "out"
        result = cli("app", str(APPS / "exec-entrypoint"), "--out", str(out), *IMAGES, "--gunicorn-config", "--date", "2026-11-23")
        assert not out.exists()
    line = source.count("\n") + 1
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(f"error: generator/templates/{name}:{line}: `{{{{ … }}}}` outputs 'raw' without an escaping filter"), (
        result.stderr
    )
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
