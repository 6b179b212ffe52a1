"""The platform's health checks, run against the app's port as App Engine runs them.

A check passes on HTTP 200 within `timeout_sec`; `success_threshold` passes in a row make the
instance ready (or alive), `failure_threshold` failures in a row make it not. Readiness is checked
every `check_interval_sec` from the start and must pass within `app_start_timeout_sec`, else the
deployment fails; liveness starts after `initial_delay_sec`, and a failing instance is restarted
by the platform (here: reported). A check without a `path` is the platform's check of its own
proxy, which stands for "the app accepts connections on $PORT": here, a TCP connection. Every
failure is reported with its reason (the HTTP status, a timeout, a refused connection), every
change of state once: that is what a developer needs to see in the terminal.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from generator.app.checks import Check

Log = Callable[[str], None]


def probe(check: Check, port: int) -> tuple[bool, str]:
    """One check of the app on 127.0.0.1:port: (passed, what happened)."""
    if check.path is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=check.timeout_sec).close()
            return True, "accepts connections"
        except OSError as exc:
            return False, _why(exc, check.timeout_sec)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=check.timeout_sec)
    try:
        conn.request("GET", check.path, headers={"User-Agent": "GoogleHC/1.0", "Connection": "close"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, _why(exc, check.timeout_sec)
    finally:
        conn.close()
    return status == 200, f"HTTP {status}"


def _why(exc: BaseException, timeout: int) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within timeout_sec ({timeout}s)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on $PORT yet)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else f"the connection closed ({type(exc).__name__})"


@dataclass
class State:
    """One check's consecutive passes and failures, and whether it currently holds."""

    check: Check
    up: bool = False
    passes: int = 0
    failures: int = 0

    def record(self, passed: bool) -> bool | None:
        """Count one result; the new state when it changes (the thresholds reached), else None."""
        self.passes, self.failures = (self.passes + 1, 0) if passed else (0, self.failures + 1)
        if not self.up and self.passes >= self.check.success_threshold:
            self.up = True
            return True
        if self.up and self.failures >= self.check.failure_threshold:
            self.up = False
            return False
        return None


def what(check: Check) -> str:
    return f"{check.kind} check " + (f"GET {check.path}" if check.path else "(TCP: no path set)")


def wait_ready(check: Check, port: int, log: Log, started: float, alive: Callable[[], bool]) -> bool:
    """Readiness checks from the start until ready (True) or app_start_timeout_sec passes or the app exits (False)."""
    state = State(check)
    deadline = started + check.app_start_timeout_sec
    while True:
        passed, why = probe(check, port)
        elapsed = time.monotonic() - started
        if state.record(passed):
            log(f"ready after {elapsed:.1f}s: {what(check)} passed {check.success_threshold} time(s) in a row ({why})")
            return True
        if not passed:
            log(f"not ready: {what(check)}: {why} ({elapsed:.0f}s of app_start_timeout_sec {check.app_start_timeout_sec})")
        if time.monotonic() + check.check_interval_sec > deadline:
            log(f"never became ready within app_start_timeout_sec ({check.app_start_timeout_sec}s): {what(check)}: {why}")
            return False
        if not alive():
            log("the app exited before it became ready")
            return False
        time.sleep(check.check_interval_sec)


class Monitor:
    """After readiness: both checks on their own intervals, in daemon threads, until stop()."""

    def __init__(self, readiness: Check, liveness: Check, port: int, log: Log, started: float) -> None:
        self.port, self.log, self.started = port, log, started
        self._stop = threading.Event()
        ready = State(readiness, up=True)
        self._threads = [threading.Thread(target=self._loop, args=(s,), daemon=True) for s in (ready, State(liveness, up=True))]

    def start(self) -> Monitor:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, state: State) -> None:
        check = state.check
        if self._stop.wait(max(0.0, self.started + check.initial_delay_sec - time.monotonic())):
            return
        while not self._stop.is_set():
            passed, why = probe(check, self.port)
            change = state.record(passed)
            if not passed and not self._stop.is_set():
                self.log(f"{what(check)} failed: {why} ({state.failures} in a row; failure_threshold {check.failure_threshold})")
            if change is False:
                consequence = "App Engine would restart this instance" if check.kind == "liveness" else "App Engine would send it no traffic"
                self.log(f"{check.kind}: failing; {consequence}")
            elif change:
                self.log(f"{check.kind}: passing again ({why})")
            self._stop.wait(check.check_interval_sec)
