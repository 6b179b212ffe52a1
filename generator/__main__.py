"""`python -m generator`; Ctrl-C while the CLI is still being imported is one line and exit 130 too."""

from __future__ import annotations

import os
import signal
import sys

from generator import handle_ctrl_c, interrupted

handle_ctrl_c()


def _unraisable(info: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C that lands in a callback Python cannot raise from (importlib's module-lock weakref, a
    __del__) would print "Exception ignored … Traceback" and be lost. Nothing raised in this hook can
    escape it either (re-raising the signal here printed that traceback under load), so the process
    ends here as `interrupted()` would: one line, exit 130 (a set of files half-written is rolled
    back by the next run, as after a kill)."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)
        return
    while True:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            break
        except KeyboardInterrupt:
            continue
    try:
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


sys.unraisablehook = _unraisable
try:
    from generator.cli import main

    main()
except KeyboardInterrupt:
    interrupted()
