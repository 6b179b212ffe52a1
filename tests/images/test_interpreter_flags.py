"""The compiler flags a built interpreter was made with, read back from its `sysconfig`: CPython's own
optimisation level is the one that wins (dpkg-buildflags' -O2 came after it on every compile line
and made the interpreter slower than the distributions' own: benchmarks/interpreter.py)."""

from __future__ import annotations

import pytest

from tests.image_fixtures import podman

SYSCONFIG = "import sysconfig; print(sysconfig.get_config_var('CFLAGS')); print(sysconfig.get_config_var('CONFIG_ARGS'))"


def cflags(tag: str) -> tuple[list[str], str]:
    out = podman("run", "--rm", "--network=none", tag, "python", "-c", SYSCONFIG).stdout.splitlines()
    return out[0].split(), out[1]


@pytest.mark.image
def test_cpythons_own_optimisation_level_wins(image: dict) -> None:
    flags, config_args = cflags(image["tag"])
    levels = [f for f in flags if f.startswith("-O")]
    assert levels and levels[-1] == "-O3", flags  # the last -O on the line is the one gcc applies
    assert "-O2" not in levels, flags
    assert "-fstack-protector-strong" in flags, flags  # the distribution's hardening flags are still there
    assert "--enable-shared" in config_args, config_args  # libpython for those who embed


@pytest.mark.image
def test_the_legacy_interpreter_is_one_static_executable_with_libpython_a_kept(legacy_image: dict) -> None:
    """2.7: --disable-shared, as xenial links its python2.7 (a libpython.so would be linked by every
    extension module); libpython2.7.a stays where python-config points embedders (uWSGI)."""
    flags, config_args = cflags(legacy_image["tag"])
    assert "-fno-semantic-interposition" in flags, flags
    assert "--disable-shared" in config_args, config_args
    script = "import sysconfig, os; print(os.path.join(sysconfig.get_config_var('LIBPL'), sysconfig.get_config_var('LIBRARY')))"
    lib = podman("run", "--rm", "--network=none", legacy_image["tag"], "python", "-c", script).stdout.strip()
    assert lib.endswith("libpython2.7.a"), lib
    podman("run", "--rm", "--network=none", legacy_image["tag"], "test", "-s", lib)
    copies = podman("run", "--rm", "--network=none", legacy_image["tag"], "find", "/opt", "-name", "libpython*").stdout.split()
    assert copies == [lib], copies  # one static library, no libpython.so
    maps = podman("run", "--rm", "--network=none", legacy_image["tag"], "python", "-c", "print(open('/proc/self/maps').read())").stdout
    assert "libpython" not in maps
