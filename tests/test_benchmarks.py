"""What must keep working beside the generator's own commands: every script in benchmarks/ runs
(smoke runs at its smallest settings; the image ones need a built image, so they carry the image
marker), and a non-editable install carries the package's data files (templates, in-container scripts)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))
TESTED = {"bench_generate.py", "bench_lock.py", "image_size.py", "interpreter.py", "reassembly.py", "startup.py"}  # one test each, below


def bench(script: str, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    print(proc.stdout)
    return proc.stdout


def test_every_benchmark_script_has_a_smoke_test() -> None:
    assert set(SCRIPTS) == TESTED


def test_bench_generate_smallest() -> None:
    out = bench("bench_generate.py", "--runs", "1")
    for name in ("generate (all files written)", "generate (nothing changed)", "generate --check", "python -c pass"):
        assert name in out and "n=1" in out


def test_bench_lock_no_op_only() -> None:
    """--runs 0: no full relock (PyPI), only the no-op relock and --check over the committed locks."""
    out = bench("bench_lock.py", "--runs", "0", "--noop-runs", "1")
    assert "lock (full relock" not in out
    assert "lock (no-op: every runtime skipped)" in out and "lock --check" in out and "n=1" in out


@pytest.mark.image
def test_image_size_of_the_runtime_image(image: dict) -> None:
    out = bench("image_size.py", image["tag"])
    assert "total " in out and "goal 1, Python layer" in out and "goal 2, image" in out


@pytest.mark.image
def test_startup_of_the_runtime_image(image: dict) -> None:
    out = bench("startup.py", image["tag"], "--runs", "1", timeout=1800)
    assert "python -c pass" in out and "Flask/gunicorn: first HTTP 200" in out and "interpreter + /env layer" in out


@pytest.mark.image
def test_interpreter_speed_against_debians_own(image: dict, tmp_path: Path) -> None:
    """One benchmark, two rounds (merged into one pyperf JSON), one value each: the image's 3.11.2 and
    Debian bookworm's python3.11 (a root from the archive) side by side."""
    out = bench("interpreter.py", image["tag"], "--rounds", "2", "--processes", "1", "--values", "1", "--benchmarks", "nqueens",
                "--json-dir", str(tmp_path), timeout=1800)  # fmt: skip
    assert "debian:bookworm: localhost/flex-bench/bookworm-python3.11" in out and out.count("Python 3.11.2,") == 2, out
    assert re.search(r"^nqueens +[0-9.]+ +[0-9.]+ +[0-9.]+×$", out, re.M), out
    assert re.search(r"^geometric mean, image vs debian:bookworm: [0-9.]+× \((faster|slower);", out, re.M), out
    for name in ("image.json", "debian-bookworm.json"):  # pyperf's JSON: one benchmark, a run with its value per round
        saved = json.loads((tmp_path / name).read_text())
        (one,) = saved["benchmarks"]
        assert {**saved["metadata"], **one.get("metadata", {})}["name"] == "nqueens"
        assert [len(r["values"]) for r in one["runs"] if "values" in r] == [1, 1]  # one per round


@pytest.mark.image
def test_interpreter_speed_of_python2_against_xenials_own(legacy_image: dict, tmp_path: Path) -> None:
    """2.7: pyperf 1.7.1 running pyperformance 0.9.1's module benchmarks (regex_compile imports two of its
    siblings), against Ubuntu xenial's python2.7 (a root from the archive); the host reads 1.7.1's JSON."""
    out = bench("interpreter.py", legacy_image["tag"], "--rounds", "1", "--processes", "1", "--values", "1", "--benchmarks", "regex_compile",
                "--json-dir", str(tmp_path), timeout=1800)  # fmt: skip
    assert "pyperf 1.7.1, pyperformance 0.9.1's benchmarks" in out, out
    assert "ubuntu:xenial: localhost/flex-bench/xenial-python2.7" in out and re.search(r"Python 2\.7\.\d+,", out), out
    assert re.search(r"^regex_compile +[0-9.e-]+ +[0-9.e-]+ +[0-9.]+×$", out, re.M), out
    assert re.search(r"^geometric mean, image vs ubuntu:xenial: [0-9.]+× \((faster|slower);", out, re.M), out
    saved = json.loads((tmp_path / "ubuntu-xenial.json").read_text())
    (one,) = saved["benchmarks"]
    metadata = {**saved["metadata"], **one.get("metadata", {})}
    assert metadata["name"] == "regex_compile" and metadata["perf_version"] == "1.7.1", metadata


@pytest.mark.image
def test_reassembly_after_a_security_update(test_tree: Path, roots: dict[str, str], python_mirror: str) -> None:
    """A full rebuild (CPython compiled) and a re-assembly, side by side, after a simulated -security update."""
    out = bench("reassembly.py", "--tree", str(test_tree), "--base-image", roots["ubuntu22"], "--python-mirror", python_mirror, timeout=3600)
    assert "full rebuild (interpreter compiled, no layer cache):" in out and "re-assembly (interpreter reused by its input hash):" in out


# --- the wheel -----------------------------------------------------------------------------------


def test_a_wheel_carries_the_templates_and_the_in_container_scripts(tmp_path: Path) -> None:
    """A non-editable install has only what the wheel lists: `build` copies generator/incontainer/ into every build context."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "generator", src / "generator", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(tmp_path / "out")], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "out").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for sub in ("incontainer", "templates"):
        expected = {f"generator/{sub}/{p.name}" for p in (ROOT / "generator" / sub).iterdir() if p.is_file()}
        assert expected and expected <= names, sorted(expected - names)
    assert "generator/incontainer/flex_native.py" in names and "generator/templates/Dockerfile.j2" in names
