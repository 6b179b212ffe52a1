"""`run`: an app on this machine as the flexible environment runs it, its container's whole life.

The image is built as `app --hermetic` + `podman build --network=none` build it (layers reused),
or taken as built. The container gets what the platform sets (GAE_* variables, PORT 8080, the
app's env_variables) and app.yaml's `resources` as its cpu and memory limits; a front proxy
(app_proxy.py) adds the load balancer's headers; the health checks (app_probes.py) say when it is
ready. Nothing may outlive `run`: the container runs with --rm under a name of this process and is
removed in a `finally` (Ctrl-C, SIGTERM, SIGHUP, the app exiting), and a reaper process, started
first and holding only the read end of a pipe, removes it when that pipe closes: even when `run`
is killed with SIGKILL, the kernel closes the pipe and the reaper cleans up, then exits itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from generator.app import appyaml
from generator.app import checks as app_checks
from generator.app import dockerfile as app_mod
from generator.app import probes as app_probes
from generator.app import proxy as app_proxy
from generator.core.errors import GeneratorError, InputError
from generator.schedule.runtimes import Schedule

CONTAINER_PORT = 8080  # the port the platform gives the app
LABEL = "flex-python.run"  # on every container `run` starts, with its pid: tests and people can find them
# The reaper: reads its pipe to the end (run closed it, or died), then removes the container, again
# while the `podman run` it was told of is still alive (it may have been creating it), then exits.
REAPER = """
import os, subprocess, sys, time
name, lines = sys.argv[1], sys.stdin.read().split()
if "detach" in lines:
    sys.exit(0)
pid = int(lines[0]) if lines and lines[0].isdigit() else 0
end = time.monotonic() + 30
while True:
    subprocess.run(["podman", "rm", "-f", "-i", "-t", "0", name], capture_output=True)
    try:
        os.kill(pid, 0) if pid else None
    except OSError:
        break
    if not pid or time.monotonic() > end:
        break
    time.sleep(1)
"""


class RunError(GeneratorError):
    """The app did not start, never became ready, or exited: exit 1."""


class Stopped(BaseException):
    """SIGTERM or SIGHUP reached `run`: stop and clean up as for Ctrl-C (not an Exception: nothing catches it by accident)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class Options:
    app_dir: Path
    config: Path | None = None
    port: int = 8080
    project: str = "local-project"
    version: str = "local"
    no_build: bool = False
    detach: bool = False
    https: bool = False
    image: str | None = None
    runtime_image: str | None = None
    build_image: str | None = None
    index_url: str | None = None
    gunicorn_config: bool = False
    on: dt.date = field(default_factory=dt.date.today)


@dataclass
class App:
    """What app.yaml says about running the app (read and checked before anything is built)."""

    settings: app_checks.Settings
    service: str
    env_variables: dict[str, str]


def read_app(opts: Options) -> App:
    """app.yaml's checks, resources, service and env_variables; AppYamlError (exit 2) on a bad value."""
    if not opts.app_dir.is_dir():
        raise app_mod.AppError(f"{opts.app_dir}: not a directory")
    cfg, doc = appyaml.load_config(opts.app_dir, opts.config)
    settings = app_checks.read(doc)
    warnings: list[str] = []
    service, env = app_mod.service_and_env(doc, cfg, opts.app_dir, warnings)
    return App(settings, service, env)


def image_name(app_dir: Path, service: str) -> str:
    """One local tag per app directory (two apps of one service name do not share it)."""
    digest = hashlib.sha256(str(app_dir.resolve()).encode()).hexdigest()[:10]
    return f"localhost/flex-run/{service}-{digest}:latest"


def platform_env(app: App, opts: Options, instance: str) -> dict[str, str]:
    """The runtime documentation's table of variables the platform sets, over the app's own."""
    return {
        **app.env_variables,
        "GAE_INSTANCE": instance,
        "GAE_MEMORY_MB": str(app.settings.resources.memory_mb),
        "GAE_SERVICE": app.service,
        "GAE_VERSION": opts.version,
        "GOOGLE_CLOUD_PROJECT": opts.project,
        "PORT": str(CONTAINER_PORT),
    }


def build(opts: Options, schedule: Schedule, tag: str, log: Callable[[str], None]) -> None:
    """`app --hermetic` into a temporary build context, then `podman build --network=none` (layer cache kept)."""
    plan = app_mod.plan_app(
        opts.app_dir,
        schedule,
        config=opts.config,
        runtime_image=opts.runtime_image,
        build_image=opts.build_image,
        gunicorn_config=opts.gunicorn_config,
        hermetic=True,
        index_url=opts.index_url,
        on=opts.on,
    )
    for warning in plan.warnings:
        log(f"warning: {warning}")
    with tempfile.TemporaryDirectory(prefix="flex-run-") as tmp:
        ctx = Path(tmp) / "context"
        app_mod.write(plan, ctx, opts.app_dir)
        log(f"runtime {plan.runtime_id}: FROM {plan.image}; building {tag} with the network off")
        start = time.monotonic()
        proc = subprocess.Popen(
            ["podman", "build", "--network=none", "-t", tag, str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        assert proc.stdout is not None
        tail = _pump(proc.stdout, log)
        if proc.wait() != 0:
            raise RunError(f"podman build of {opts.app_dir} failed (exit {proc.returncode}); its last line: {tail or '(none)'}")
    log(f"built {tag} in {time.monotonic() - start:.0f}s")


def _pump(stream: IO[str], log: Callable[[str], None]) -> str:
    last = ""
    for line in stream:
        last = line.rstrip("\n")
        log(last)
    return last


@contextmanager
def signals_stop() -> Iterator[None]:
    """SIGTERM and SIGHUP end `run` the way Ctrl-C does: through every `finally`."""

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class Container:
    """The app's container, its reaper and its log pumps; close() removes every one of them."""

    def __init__(self, image: str, service: str) -> None:
        self.image = image
        self.name = f"flex-run-{service}-{os.getpid()}-{secrets.token_hex(3)}"
        read, self._pipe = os.pipe()
        with os.fdopen(read, "rb") as stdin:  # the reaper holds the only read end; we, the only write end
            self.reaper = subprocess.Popen([sys.executable, "-c", REAPER, self.name], stdin=stdin, start_new_session=True)
        self.proc: subprocess.Popen[str] | None = None
        self.detached = False
        self._pumps: list[threading.Thread] = []
        self._closed = False

    def start(self, env: dict[str, str], resources: app_checks.Resources, publish: int, detach: bool, log: Callable[[str], None]) -> None:
        args = ["podman", "run", "--rm", "--name", self.name, "--label", f"{LABEL}={os.getpid()}", "-p", f"127.0.0.1:{publish}:{CONTAINER_PORT}"]
        args += [f"--cpus={resources.cpu:g}", f"--memory={resources.memory_mb}m"]
        args += [a for k, v in sorted(env.items()) for a in ("-e", f"{k}={v}")]
        args += ["-d", self.image] if detach else [self.image]
        self.detached = detach
        # its own session: Ctrl-C reaches `run` alone, which stops the container itself
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        os.write(self._pipe, f"{self.proc.pid}\n".encode())
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream in (self.proc.stdout, self.proc.stderr):
            pump = threading.Thread(target=_pump, args=(stream, log), daemon=True)
            pump.start()
            self._pumps.append(pump)

    def alive(self) -> bool:
        """Still running: the attached `podman run` has not returned (detached: podman says it runs)."""
        if self.proc is None:
            return False
        code = self.proc.poll()
        if not self.detached or code is None:  # attached: the app runs as long as `podman run`; detached: still creating it
            return code is None
        if code != 0:
            return False
        state = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", self.name], capture_output=True, text=True)
        return state.stdout.strip() == "true"

    def detach(self) -> None:
        """Leave the container running: the reaper is told so, then let go."""
        os.write(self._pipe, b"detach\n")
        self.close(remove=False)

    def close(self, remove: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if remove:
            subprocess.run(["podman", "rm", "-f", "-i", "-t", "2", self.name], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pump in self._pumps:
            pump.join(timeout=5)
        os.close(self._pipe)
        self.reaper.wait(timeout=60)


def run(opts: Options, schedule: Schedule | None, log: Callable[[str, str], None]) -> int:
    """Build (or take) the image, start it behind the proxy, report its health; the exit code.

    `log(source, line)`: source is build, run, proxy, readiness/liveness (health) or app.
    """
    app = read_app(opts)  # every refusal before anything is built or started
    tag = opts.image or image_name(opts.app_dir, app.service)
    if schedule is not None and not opts.no_build:
        build(opts, schedule, tag, lambda line: log("build", line))
    elif subprocess.run(["podman", "image", "exists", tag], capture_output=True).returncode != 0:
        raise InputError(f"--no-build: no image {tag} in podman's storage; run without --no-build first, or name one with --image")
    with signals_stop():
        return _serve(opts, app, tag, log)


def _serve(opts: Options, app: App, tag: str, log: Callable[[str, str], None]) -> int:
    proxy = None if opts.detach else _proxy(opts, log)
    container = Container(tag, app.service)
    try:
        upstream = opts.port if proxy is None else _free_port()
        settings = app.settings
        started = time.monotonic()
        container.start(platform_env(app, opts, container.name), settings.resources, upstream, opts.detach, lambda line: log("app", line))
        log("run", f"container {container.name}: {tag}, cpu {settings.resources.cpu:g}, memory {settings.resources.memory_mb} MB")
        if proxy is not None:
            proxy.upstream = upstream
        health = lambda line: log("health", line)  # noqa: E731
        if not app_probes.wait_ready(settings.readiness, upstream, health, started, container.alive):
            raise RunError(f"{opts.app_dir}: the app did not become ready; the lines above say why")
        if opts.detach:
            container.detach()
            log("run", f"detached: http://127.0.0.1:{opts.port} (no front proxy); stop it with: podman rm -f {container.name}")
            return 0
        log("run", f"ready: http://127.0.0.1:{opts.port} (front proxy{', https' if opts.https else ''}); Ctrl-C stops and removes the container")
        monitor = app_probes.Monitor(settings.readiness, settings.liveness, upstream, health, started).start()
        assert container.proc is not None
        code = container.proc.wait()
        monitor.stop()
        raise RunError(f"the app exited with status {code}")
    except KeyboardInterrupt:
        log("run", "stopping (Ctrl-C): removing the container")
        return 130
    except Stopped as exc:
        log("run", f"stopping ({signal.Signals(exc.signum).name}): removing the container")
        return 128 + exc.signum
    finally:
        quiet = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # a second Ctrl-C or kill must not cut the clean-up short
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in quiet}
        try:
            container.close()
            if proxy is not None:
                proxy.close()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def _proxy(opts: Options, log: Callable[[str, str], None]) -> app_proxy.Proxy:
    try:
        return app_proxy.Proxy(opts.port, 0, opts.https, lambda line: log("proxy", line)).start()
    except OSError as exc:
        raise InputError(f"--port {opts.port}: 127.0.0.1:{opts.port} cannot be listened on ({exc.strerror or exc}); choose another port") from exc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
