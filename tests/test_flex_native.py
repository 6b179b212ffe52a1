"""flex_native's file work, run on the host as the images run it: what an app's install changed in /env is
all that reaches the final stage, and what it removed is removed there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "generator" / "incontainer" / "flex_native.py"


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
