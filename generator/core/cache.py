"""The one cache directory of this tool: downloads, tool venvs, lock caches and build logs live under it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/flex-python`` (default ``~/.cache/flex-python``), read on every call so tests can move it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flex-python"
