"""The trust commands: `sign` (the build workflow, after a push) and `verify` (anyone, before use).

Registered on the main group by generator/cli/__init__.py; errors are GeneratorErrors, printed by its `_Group`.
"""

from __future__ import annotations

from pathlib import Path

import click

from generator.cli.options import echo
from generator.core.errors import GeneratorError
from generator.schedule import runtimes as schedule_mod


class NotVerified(GeneratorError):
    """An image failed a check of `verify` (exit 1); the verdict lines were printed above."""


@click.command()
@click.argument("image")
@click.option(
    "--runtime", "runtime_id", metavar="ID", help="The runtime the image must be (default: the one its flex-python.runtime-id label names)."
)
@click.pass_obj
def verify(schedule_path: Path | None, image: str, runtime_id: str | None) -> None:
    """Check IMAGE (NAME@sha256:…) against publish.signing and this checkout's lock: its signature, its SLSA
    provenance (every input it names is the one the lock pins) and its SBOMs. One line per check; exit 1 on any failure."""
    from generator.images import verify as verify_mod

    sched = schedule_mod.load_given(schedule_path)
    report = verify_mod.verify(sched, image, runtime_id)
    for line in report.text():
        echo(line)
    if not report.ok:
        raise NotVerified(f"{report.ref}: {sum(not ok for _, ok, _ in report.lines)} of {len(report.lines)} checks failed")


@click.command()
@click.argument("runtime_id")
@click.argument("image")
@click.option("--build-image", is_flag=True, help="IMAGE is the runtime's build image (its provenance names the devel closure too).")
@click.option(
    "--key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A cosign private key (its password in $COSIGN_PASSWORD); default: keyless, with the workflow's OIDC identity.",
)
@click.option("--provenance-out", type=click.Path(path_type=Path, dir_okay=False), help="Also write the provenance statement to this file.")
@click.pass_obj
def sign(schedule_path: Path | None, runtime_id: str, image: str, build_image: bool, key: Path | None, provenance_out: Path | None) -> None:
    """Sign a pushed image (NAME@sha256:…) and attach its SLSA v1 provenance (made from the lock and this
    commit) and its SPDX and CycloneDX SBOMs as signed attestations. The image's SBOM labels must be the lock's."""
    from generator.cli.options import runtime_of
    from generator.core import fileset, registry
    from generator.images import provenance, sbom, signing
    from generator.images.verify import _pinned

    sched = schedule_mod.load_given(schedule_path)
    r = runtime_of(sched, runtime_id)
    name, digest = _pinned(image)
    ref = f"{name}@{digest}"
    docs = sbom.documents(sched, r, build_image)
    labels = registry.image_config(ref, tls_verify=not registry.on_this_machine(ref)).get("config", {}).get("Labels") or {}
    wrong = [
        f"{sbom.LABEL[f]} is {labels.get(sbom.LABEL[f]) or 'missing'}, not {sbom.sha256_of(t)}"
        for f, t in docs.items()
        if labels.get(sbom.LABEL[f]) != sbom.sha256_of(t)
    ]
    if wrong:
        raise GeneratorError([f"{ref}: its SBOM labels are not the documents this checkout's lock makes; not signed", *wrong])
    pred = provenance.predicate(sched, r, provenance.commit_of(sched.path.resolve().parent), build_image)
    stmt = provenance.statement(pred, name, digest)
    provenance.validate(stmt)
    if provenance_out:
        fileset.write_output(provenance_out, provenance.dumps(stmt))
    signing.sign(ref, key)
    echo(f"signed {ref}", err=True)
    signing.attest(ref, provenance.dumps(pred), "slsaprovenance1", key)
    echo(f"attested its SLSA v1 provenance ({len(pred['buildDefinition']['resolvedDependencies'])} resolved dependencies)", err=True)
    for fmt, text in sorted(docs.items()):
        signing.attest(ref, text, signing.SBOM_TYPE[fmt], key)
        echo(f"attested its {fmt} SBOM (sha256 {sbom.sha256_of(text)})", err=True)
    echo(f"signed and attested {ref} ({'keyless' if key is None else 'key ' + str(key)})")
