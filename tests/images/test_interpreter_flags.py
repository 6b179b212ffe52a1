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
def test_the_legacy_interpreter_is_built_without_semantic_interposition(legacy_image: dict) -> None:
    """2.7 (and 3.4–3.9): --enable-shared without -fno-semantic-interposition calls libpython's own functions through the PLT."""
    flags, config_args = cflags(legacy_image["tag"])
    assert "-fno-semantic-interposition" in flags, flags
    assert "--enable-shared" in config_args, config_args
