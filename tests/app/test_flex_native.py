"""flex_native's file work, run on the host as the images run it: what an app's install changed in /env is
all that reaches the final stage, and what it removed is removed there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "generator" / "incontainer" / "flex_native.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_the_delta_holds_exactly_what_the_install_added_changed_or_removed(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "lib" / "site-packages" / "old").mkdir(parents=True)
    (env / "bin").mkdir()
    (env / "bin" / "pip").write_text("#!/env/bin/python\n")
    (env / "lib" / "site-packages" / "old" / "__init__.py").write_text("x = 1\n")
    (env / "lib" / "site-packages" / "same.py").write_text("y = 1\n")
    (env / "bin" / "python").symlink_to("/opt/python3.11/bin/python3.11")
    assert run("manifest", str(env), str(tmp_path / "before.txt")).returncode == 0
    # the install: a new package with a script, a changed file, a removed package
    (env / "lib" / "site-packages" / "new").mkdir()
    (env / "lib" / "site-packages" / "new" / "mod.so").write_bytes(b"\x7fELF...")
    (env / "bin" / "server").write_text("#!/env/bin/python\n")
    (env / "bin" / "server").chmod(0o755)
    (env / "bin" / "pip").write_text("#!/env/bin/python\n# upgraded\n")
    (env / "lib" / "site-packages" / "old" / "__init__.py").unlink()
    (env / "lib" / "site-packages" / "old").rmdir()
    proc = run("delta", str(env), str(tmp_path / "before.txt"), str(tmp_path / "delta"))
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.relative_to(tmp_path / "delta").as_posix() for p in (tmp_path / "delta").rglob("*") if not p.is_dir())
    assert got == ["bin/pip", "bin/server", "lib/site-packages/new/mod.so"]
    assert (tmp_path / "delta" / "bin" / "server").stat().st_mode & 0o111  # still executable
    assert (tmp_path / "delta.deleted").read_text() == f"{env}/lib/site-packages/old/__init__.py\n"
    assert "3 files added or changed, 1 removed" in proc.stdout


def test_remove_touches_nothing_outside_env(tmp_path: Path) -> None:
    listing = tmp_path / "deleted.txt"
    listing.write_text(f"{tmp_path}/precious\n")
    (tmp_path / "precious").write_text("keep\n")
    proc = run("remove", str(listing))
    assert proc.returncode == 1 and "not a path under /env" in proc.stderr
    assert (tmp_path / "precious").exists()


def test_usage_is_refused_with_the_commands() -> None:
    proc = run("nonsense")
    assert proc.returncode == 2 and "keep-debs" in proc.stderr and "delta" in proc.stderr


def test_a_failed_build_names_the_missing_piece_and_its_package() -> None:
    """What the build stage runs when pip fails: flex_native's diagnose over pip's real output (a fixture)."""
    log = Path(__file__).resolve().parents[1] / "fixtures" / "pip-build-errors" / "psycopg2-2.9.10-no-pg_config.txt"
    proc = run("diagnose", str(log))
    assert proc.returncode == 0, proc.stderr
    assert "pg_config" in proc.stdout and "libpq-dev" in proc.stdout


def test_check_names_a_missing_library_and_its_package(tmp_path: Path) -> None:
    """The final stage's check: an extension whose library is not in the image stops the build, naming both."""
    import shutil

    if shutil.which("gcc") is None:  # the project's machines come with gcc
        pytest.skip("no C compiler on this host")
    env = tmp_path / "env"
    env.mkdir()
    (tmp_path / "flexdemo.c").write_text("int flexdemo(void) { return 1; }\n")
    (tmp_path / "ext.c").write_text("int flexdemo(void);\nint ext(void) { return flexdemo(); }\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    soname = "-Wl,-soname,libflexdemo.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", soname, "-o", str(lib / "libflexdemo.so.1"), str(tmp_path / "flexdemo.c")], check=True)
    (lib / "libflexdemo.so").symlink_to("libflexdemo.so.1")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(env / "ext.so"), str(tmp_path / "ext.c"), f"-L{lib}", "-lflexdemo"], check=True)
    report = tmp_path / "report.txt"
    report.write_text(f"libflexdemo.so.1 libflexdemo1 {env}/ext.so\n")  # what the build stage's scan recorded
    proc = run("check", str(env), str(report))  # the library is on no path the dynamic linker searches
    assert proc.returncode == 1
    assert f"{env}/ext.so: libflexdemo.so.1 not found (package libflexdemo1)" in proc.stderr
    found = {"LD_LIBRARY_PATH": str(lib)}
    ok = subprocess.run([sys.executable, str(SCRIPT), "check", str(env), str(report)], capture_output=True, text=True, env=found)
    assert ok.returncode == 0 and "all 1 ELF files" in ok.stdout, ok.stderr
