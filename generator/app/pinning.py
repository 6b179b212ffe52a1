"""`app` verifies before it pins: the runtime image (and the build image) an app's Dockerfile is to be
built on is checked by `verify` before its digest is written there.

With `publish.signing` in the schedule, an image that fails any check (unsigned, another signer, a
provenance that names inputs this checkout's lock does not pin, another SBOM) is refused, and nothing
is written. A local image (containers-storage:, docker-daemon:, localhost/…) has no registry that
could hold its signature, so it is refused too. `--no-verify` skips all of this, with a warning; a
schedule without a signing policy has nothing to check against, and says so once.
"""

from __future__ import annotations

from generator.app.runtime_image import LOCAL
from generator.core.errors import GeneratorError
from generator.images import signing, verify
from generator.schedule.runtimes import Schedule


class PinRefused(GeneratorError):
    """The image was not verified, so its digest is not written into the app's Dockerfile (exit 1)."""


def check(schedule: Schedule, runtime_id: str, images: list[tuple[str, str]], *, skip: bool) -> tuple[list[str], list[str]]:
    """(the verdict lines, warnings) for `images` — (what, the reference as given or the pinned NAME@digest) —
    each verified as runtime `runtime_id`; PinRefused naming every failed check."""
    pol = signing.policy(schedule)
    if skip:
        return [], [f"--no-verify: {', '.join(ref for _, ref in images)} written into the Dockerfile without checking signature, provenance or SBOM"]
    if pol is None:
        return [], []
    lines: list[str] = []
    for what, ref in images:
        if ref.startswith(LOCAL) or ref.startswith("localhost/"):
            raise PinRefused(f"the {what} {ref} is a local image: no registry holds a signature to verify; push it, or pass --no-verify")
        report = verify.verify(schedule, ref, runtime_id)
        lines += [f"{what}: {line}" for line in report.text()]
        if not report.ok:
            failed = [f"{what} {report.ref}: {check}: {why}" for check, ok, why in report.lines if not ok]
            raise PinRefused([*failed, f"not written: the schedule's publish.signing requires a verified {what} (--no-verify skips this)"])
    return lines, []
