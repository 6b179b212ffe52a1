"""Reproducible image generator for the App Engine flexible environment's Python runtime."""

import signal
import sys
import time
from types import FrameType
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


_first_ctrl_c: list[float] = []


def _on_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """The first Ctrl-C raises KeyboardInterrupt; more within a second (a held key, a script's
    barrage) are dropped, so none can land inside the handling of the first and end as a traceback.
    Later ones raise again: a Ctrl-C something swallowed never leaves the process unstoppable."""
    now = time.monotonic()
    if _first_ctrl_c and now - _first_ctrl_c[0] < 1.0:
        return
    _first_ctrl_c[:] = [now]
    raise KeyboardInterrupt


def handle_ctrl_c() -> None:
    """Install `_on_ctrl_c` for SIGINT (`python -m generator` does, before importing anything else)."""
    signal.signal(signal.SIGINT, _on_ctrl_c)
