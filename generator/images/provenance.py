"""SLSA v1 provenance of an image, made from the repository (the lock), not from a build log.

Who built an image from what is already written down before it is built: the schedule names the
source repository and the workflow, and the lock pins every input with its digest (the base image,
each `.deb` of the builder's and the image's closures, the CPython tarball, each tool wheel). So
the statement is made from those files and the commit: the same commit gives the same bytes
(sorted keys, no time, no host path, no invocation id), and `verify` can remake the list of inputs
from a checkout and compare it, entry by entry, with what a signed statement names.

The statement is an in-toto Statement v1 whose predicate is SLSA Provenance v1
(https://slsa.dev/provenance/v1); `validate` parses it with the in-toto attestation framework's
own definitions (its protobuf messages, unknown fields refused) and checks what the SLSA spec
requires beyond them. cosign attaches it (`cosign attest --type slsaprovenance1`), signed.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import __version__
from generator.core import paths
from generator.core.errors import GeneratorError
from generator.images import ospkgs, render
from generator.schedule.runtimes import Runtime, Schedule

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
WORKFLOW = ".github/workflows/build.yml"


class ProvenanceError(GeneratorError):
    """A statement that is not valid in-toto/SLSA v1, or a checkout that cannot say its commit."""


@dataclass(frozen=True)
class Input:
    """One resolved dependency: a name unique in the statement, where it is fetched from, its digest."""

    name: str
    uri: str
    digest: dict[str, str]

    def descriptor(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "digest": dict(sorted(self.digest.items()))}


def commit_of(root: Path) -> str:
    """The checkout's commit (git rev-parse HEAD); ProvenanceError where it is no git checkout."""
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = proc.stdout.strip()
    if proc.returncode != 0 or len(commit) != 40:
        raise ProvenanceError(f"{root}: not a git checkout ({proc.stderr.strip()[:200]}); the provenance names the commit an image was built from")
    return commit


def inputs(schedule: Schedule, r: Runtime, build_image: bool = False) -> list[Input]:
    """Every locked input of runtime `r`'s image (or its build image), sorted by name: the base image by
    digest, each `.deb` fetched for its builder stage and its final stage (and the build image's devel
    closure), the CPython tarball, each tool wheel. The base's own packages come inside the base image."""
    root = schedule.path.resolve().parent
    lock = r.packages
    if lock is None:
        raise ProvenanceError(f"{r.os_id} has no package lock in {paths.SCHEDULE_LOCK}: run `python -m generator refresh --only packages {r.os_id}`")
    out = [Input("base-image", f"docker://{r.base_name}@{r.base.digest}", {"sha256": r.base.digest.removeprefix("sha256:")})]
    snapshot = f"{ospkgs.SNAPSHOT_SERVICE}/{lock.snapshot}"
    sets = [("build", lock.build), ("runtime", lock.runtime), *([("devel", lock.devel)] if build_image else [])]
    for stage, debs in sets:
        out += [Input(f"deb:{stage}:{d.name}:{d.architecture}", f"{snapshot}/{d.filename}", {"sha256": d.sha256}) for d in debs]
    tarball, sha = r.tarballs[0]
    out.append(Input(f"cpython:{tarball}", f"{r.interpreter.url.rsplit('/', 1)[0]}/{tarball}", {"sha256": sha}))
    _, tools = render.lock_inputs(root, r)
    out += [Input(f"pypi:{t['filename']}", t["url"], {"sha256": t["sha256"]}) for t in tools]
    return sorted(out, key=lambda i: i.name)


def predicate(schedule: Schedule, r: Runtime, commit: str, build_image: bool = False) -> dict[str, Any]:
    """The SLSA v1 provenance predicate of runtime `r`'s image at `commit`: deterministic for them."""
    repo = schedule.model.publish.source.rstrip("/")
    image = f"{r.image}-build" if build_image else r.image
    source = Input(f"source:{repo}", f"git+{repo}@{commit}", {"gitCommit": commit})
    return {
        "buildDefinition": {
            "buildType": f"{repo}/blob/{commit}/docs/maintainers/signing.md#build-type-v1",
            "externalParameters": {
                "runtime": r.id,
                "image": image,
                "kind": "build image" if build_image else "runtime image",
                "source": {"repository": repo, "commit": commit},
                "workflow": {"repository": repo, "path": WORKFLOW, "ref": commit},
            },
            "internalParameters": {
                "generator": __version__,
                "inputHash": render.runtime_input_hash(schedule, schedule.path.resolve().parent, r),
                "lock": paths.SCHEDULE_LOCK,
            },
            "resolvedDependencies": [source.descriptor(), *(i.descriptor() for i in inputs(schedule, r, build_image))],
        },
        "runDetails": {
            "builder": {"id": f"{repo}/{WORKFLOW}@{commit}"},
            "metadata": {},
        },
    }


def statement(pred: dict[str, Any], image: str, digest: str) -> dict[str, Any]:
    """The in-toto Statement v1 whose subject is the image `image` (repository, no tag) at `digest`."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": image, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": pred,
    }


def dumps(doc: dict[str, Any]) -> str:
    """The bytes written and attested: sorted keys, two-space indent, one newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def validate(doc: dict[str, Any]) -> None:
    """ProvenanceError unless `doc` is an in-toto Statement v1 with a valid SLSA Provenance v1 predicate:
    parsed by the attestation framework's own messages (in-toto-attestation; an unknown field is refused)
    and checked for what the SLSA v1 spec requires (buildType, externalParameters, builder.id; each
    resolved dependency with a uri or a digest)."""
    from google.protobuf import json_format  # type: ignore[import-untyped]

    # in-toto-attestation ships no type information (no py.typed)
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2  # type: ignore[import-untyped]
    from in_toto_attestation.v1 import statement_pb2  # type: ignore[import-untyped]
    from in_toto_attestation.v1.statement import Statement  # type: ignore[import-untyped]

    try:
        stmt = Statement.copy_from_pb(json_format.Parse(json.dumps(doc), statement_pb2.Statement()))
        stmt.validate()
        prov = json_format.Parse(json.dumps(doc.get("predicate")), provenance_pb2.Provenance())
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise ProvenanceError(f"not an in-toto Statement v1 with a SLSA Provenance v1 predicate: {exc}") from exc
    problems = []
    if doc.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"predicateType is {doc.get('predicateType')!r}, not {PREDICATE_TYPE}")
    if not prov.build_definition.build_type:
        problems.append("buildDefinition.buildType is missing")
    if not prov.build_definition.HasField("external_parameters"):
        problems.append("buildDefinition.externalParameters is missing")
    if not prov.run_details.builder.id:
        problems.append("runDetails.builder.id is missing")
    for i, dep in enumerate(prov.build_definition.resolved_dependencies):
        if not (dep.uri or dep.digest or dep.content):
            problems.append(f"resolvedDependencies[{i}] has neither uri, digest nor content")
        if dep.uri and not urllib.parse.urlsplit(dep.uri).scheme:
            problems.append(f"resolvedDependencies[{i}].uri {dep.uri!r} is not a URI")
    if problems:
        raise ProvenanceError([f"not a valid SLSA v1 provenance: {p}" for p in problems])
