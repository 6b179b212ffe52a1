"""`python -m generator`; Ctrl-C while the CLI is still being imported is one line and exit 130 too."""

from __future__ import annotations

import signal
import sys

from generator import interrupted


def _unraisable(info: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C that lands in a callback Python cannot raise from (importlib's module-lock weakref, a
    __del__) would print "Exception ignored … Traceback" and be lost: deliver it again, where it is caught."""
    if isinstance(info.exc_value, KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    else:
        sys.__unraisablehook__(info)


sys.unraisablehook = _unraisable
try:
    from generator.cli import main

    main()
except KeyboardInterrupt:
    interrupted()
