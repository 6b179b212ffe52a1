"""Errors keep their cause, GENERATOR_DEBUG=1 shows it, and the code stays in reviewable pieces.

A GeneratorError translated from another exception names it as its `__cause__` (`raise … from exc`):
users see only `error: …` lines either way, but a bug report made with GENERATOR_DEBUG=1 carries
the whole chain. The shape checks keep functions and modules small enough to read in one go.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator.core import readfile, yamlsrc
from generator.core.errors import GeneratorError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "generator"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500
CAUSE_LINE = "The above exception was the direct cause of the following exception"


def run(tmp_path: Path, *args: str, debug: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GENERATOR_DEBUG"}
    env["PYTHONPATH"] = str(ROOT)
    if debug:
        env["GENERATOR_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", "generator", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


# Bad inputs, each failing through a translated exception, with the one line a user gets.
BAD_INPUTS = {
    "yaml syntax": (
        ("broken.yaml", "a: [\n"),
        ("--schedule", "broken.yaml", "generate", "--check"),
        "error: broken.yaml:2: YAML syntax error: while parsing a flow node did not find expected node content\n",
    ),
    "missing file": (None, ("resolve", "nothere/app.yaml"), "error: nothere/app.yaml: file not found\n"),
    "not utf-8": (
        ("app.yaml", b"runtime: python\n\xff\n"),
        ("resolve", "app.yaml"),
        "error: app.yaml:2: not UTF-8 text (byte 0xff at offset 16); save the file as UTF-8\n",
    ),
}


def _prepare(tmp_path: Path, file: tuple[str, str | bytes] | None) -> None:
    if file is not None:
        name, content = file
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_without_debug_exactly_the_error_lines(tmp_path: Path, case: str) -> None:
    file, args, stderr = BAD_INPUTS[case]
    _prepare(tmp_path, file)
    proc = run(tmp_path, *args, debug=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", stderr)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_debug_shows_the_traceback_with_its_cause(tmp_path: Path, case: str) -> None:
    file, args, stderr = BAD_INPUTS[case]
    _prepare(tmp_path, file)
    proc = run(tmp_path, *args, debug=True)
    assert proc.returncode == 2  # the same exit code: a debug run answers as a normal one does
    assert "Traceback (most recent call last)" in proc.stderr
    assert CAUSE_LINE in proc.stderr
    assert proc.stderr.endswith(stderr)  # and the same message, last, where a user looks


def test_a_read_error_names_the_os_error_as_its_cause(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError) as info:
        yamlsrc.load(tmp_path / "missing.yaml", "missing.yaml")
    assert isinstance(info.value.__cause__, readfile.ReadError)
    assert isinstance(info.value.__cause__.__cause__, FileNotFoundError)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _raises_in_handlers(tree: ast.AST):
    """(handler, raise) for each `raise X` directly in an except clause (not in a nested def)."""

    def walk(node: ast.AST, handler: ast.ExceptHandler | None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                yield from walk(child, None)
            elif isinstance(child, ast.ExceptHandler):
                yield from walk(child, child)
            else:
                if isinstance(child, ast.Raise) and handler is not None and child.exc is not None:
                    yield handler, child
                yield from walk(child, handler)

    yield from walk(tree, None)


def test_every_translated_exception_keeps_its_cause() -> None:
    """`raise New(...) from exc` in every except clause; `from None` only with a `# cause is noise:` comment."""
    offenders = []
    for path in _modules():
        text = path.read_text()
        lines = text.splitlines()
        for handler, node in _raises_in_handlers(ast.parse(text)):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if node.cause is None:
                offenders.append(f"{where}: no `from` (name the caught exception)")
            elif isinstance(node.cause, ast.Constant) and node.cause.value is None:
                said = " ".join(lines[node.lineno - 2 : node.end_lineno])
                if "cause is noise:" not in said:
                    offenders.append(f"{where}: `from None` drops the cause (or say `# cause is noise: why`)")
            elif not (isinstance(node.cause, ast.Name) and node.cause.id == handler.name):
                offenders.append(f"{where}: the cause is not the caught exception {handler.name!r}")
    assert not offenders, "\n".join(offenders)


def test_functions_and_modules_stay_small() -> None:
    offenders = []
    for path in _modules():
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            offenders.append(f"{rel}: {n} lines (at most {MAX_MODULE_LINES}: split it along a seam)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    offenders.append(f"{rel}:{node.lineno}: {node.name} is {n} lines (at most {MAX_FUNCTION_LINES})")
    assert not offenders, "\n".join(offenders)
