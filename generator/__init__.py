"""Reproducible image generator for the App Engine flexible environment's Python runtime."""

import signal
import sys
from typing import NoReturn

__version__ = "0.1.0"


def interrupted(detail: str = "") -> NoReturn:
    """Ctrl-C, wherever it lands (imports, click's parsing, a command): one line, exit 130.

    Here, not in the cli package, so `python -m generator` can use it before the CLI is imported. Further
    Ctrl-Cs are ignored first, so none can interrupt the message into a traceback.
    """
    while True:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a signal already caught is dropped too
            break
        except KeyboardInterrupt:
            continue
    sys.stderr.write(f"error: interrupted{detail}\n")
    sys.stderr.flush()
    raise SystemExit(130)
