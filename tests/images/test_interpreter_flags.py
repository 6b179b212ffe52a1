"""The compiler flags a built interpreter was made with, read back from its `sysconfig`: CPython's own
optimisation level is the one that wins (dpkg-buildflags' -O2 came after it on every compile line
and made the interpreter slower than the distributions' own: benchmarks/interpreter.py)."""

from __future__ import annotations

import json

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
    # one container (Python 2.7 runs this): LIBPL's static library, its size, every libpython under /opt, the maps
    script = (
        "import json, os, subprocess, sysconfig; c = sysconfig.get_config_var;"
        " lib = os.path.join(c('LIBPL'), c('LIBRARY'));"
        " print(json.dumps({'lib': lib, 'size': os.path.getsize(lib) if os.path.exists(lib) else 0,"
        " 'copies': subprocess.check_output(['find', '/opt', '-name', 'libpython*']).split(),"
        " 'maps': open('/proc/self/maps').read()}))"
    )
    seen = json.loads(podman("run", "--rm", "--network=none", legacy_image["tag"], "python", "-c", script).stdout)
    lib = seen["lib"]
    assert lib.endswith("libpython2.7.a"), lib
    assert seen["size"] > 0, seen["size"]
    assert seen["copies"] == [lib], seen["copies"]  # one static library, no libpython.so
    assert "libpython" not in seen["maps"]
