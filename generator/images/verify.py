"""`verify IMAGE@DIGEST`: is this image the one this checkout says, signed by the one the schedule names?

Three checks, each a one-line verdict, every one run even after one fails:
- signature: cosign finds a signature of the digest by the signer of `publish.signing`;
- provenance: a SLSA v1 provenance attestation signed by that signer, whose subject is this digest,
  valid in-toto/SLSA v1, naming this runtime, and whose every resolved dependency is the one this
  checkout's lock pins (same name, same digest); none missing, none extra;
- sbom: the image's labels carry the sha256 of the SBOMs this checkout's lock makes, and the signed
  SPDX and CycloneDX attestations hold exactly those documents.
Nothing is taken from the image that the checkout can make itself: a re-tagged image, another signer,
a provenance naming another `.deb`, an altered SBOM each fail their line, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from generator.core import registry
from generator.core.errors import GeneratorError, InputError
from generator.images import provenance, sbom, signing
from generator.schedule.runtimes import Runtime, Schedule

RUNTIME_LABEL = "flex-python.runtime-id"
KIND_LABEL = "flex-python.image"  # "build" on a build image


class VerifyError(InputError):
    """The image reference or runtime cannot be checked at all (not pinned by digest, unknown runtime, no policy)."""


@dataclass
class Report:
    ref: str
    runtime_id: str = ""
    build_image: bool = False
    lines: list[tuple[str, bool, str]] = field(default_factory=list)  # (check, passed, why)

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(passed for _, passed, _ in self.lines)

    def add(self, check: str, passed: bool, why: str) -> None:
        self.lines.append((check, passed, why))

    def text(self) -> list[str]:
        out = [f"{check}: {'ok' if passed else 'FAIL'}: {why}" for check, passed, why in self.lines]
        what = f"{self.runtime_id}{' build image' if self.build_image else ''}"
        out.append(f"verified: {self.ref} is {what}" if self.ok else f"NOT VERIFIED: {self.ref}")
        return out


def _pinned(ref: str) -> tuple[str, str]:
    name, _, digest = ref.partition("@")
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise VerifyError(f"{ref}: give the image by digest, NAME@sha256:<64 hex digits> (a tag can move after it is checked)")
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name, digest


def verify(schedule: Schedule, ref: str, runtime_id: str | None = None) -> Report:
    """Every check of `ref` against the schedule's policy and this checkout's lock."""
    pol = signing.policy(schedule)
    if pol is None:
        raise VerifyError(
            f"{schedule.path.name}: publish.signing is not set, so there is no signer to check against; see docs/maintainers/signing.md"
        )
    name, digest = _pinned(ref)
    pinned = f"{name}@{digest}"
    report = Report(pinned)
    try:
        labels = registry.image_config(pinned, tls_verify=not registry.on_this_machine(pinned)).get("config", {}).get("Labels") or {}
    except registry.RegistryError as exc:
        report.add("image", False, str(exc))
        return report
    r, report.build_image = _runtime(schedule, labels, runtime_id)
    report.runtime_id = r.id
    try:
        signing.verify_signature(pinned, pol)
        report.add("signature", True, f"signed by {pol.describe()}")
    except signing.SigningError as exc:
        report.add("signature", False, f"no signature by {pol.describe()}: {exc}")
    report.add("provenance", *_provenance(schedule, r, report.build_image, pinned, digest, pol))
    report.add("sbom", *_sbom(schedule, r, report.build_image, pinned, labels, pol))
    return report


def _runtime(schedule: Schedule, labels: dict[str, str], runtime_id: str | None) -> tuple[Runtime, bool]:
    """The runtime the image claims to be (its label) or the one given; VerifyError naming the choices."""
    rid = runtime_id or labels.get(RUNTIME_LABEL)
    if rid is None:
        raise VerifyError(f"the image has no {RUNTIME_LABEL} label: pass --runtime ID (one of {', '.join(schedule.runtimes)})")
    if rid not in schedule.runtimes:
        choices = ", ".join(schedule.runtimes)
        raise VerifyError(f"--runtime: {rid!r} is not a runtime of {schedule.path.name}; choose one of {choices}")
    return schedule.runtimes[rid], labels.get(KIND_LABEL) == "build"


def _provenance(schedule: Schedule, r: Runtime, build_image: bool, ref: str, digest: str, pol: signing.Policy) -> tuple[bool, str]:
    try:
        statements = signing.attestations(ref, pol, "slsaprovenance1")
    except signing.SigningError as exc:
        return False, f"no SLSA v1 provenance signed by {pol.describe()}: {exc}"
    problems: list[str] = []
    for st in statements:
        problems = _statement_problems(schedule, r, build_image, st, digest)
        if not problems:
            deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
            commit = st["predicate"]["buildDefinition"]["externalParameters"]["source"]["commit"]
            return True, f"{len(deps) - 1} inputs, each the one this checkout's lock pins (built from commit {commit})"
    return False, "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")


def _statement_problems(schedule: Schedule, r: Runtime, build_image: bool, st: dict[str, Any], digest: str) -> list[str]:
    """Why statement `st` is not this image's provenance from this checkout's lock (empty: it is)."""
    subjects = [s.get("digest", {}).get("sha256") for s in st.get("subject", [])]
    if digest.removeprefix("sha256:") not in subjects:
        return [f"the statement's subject is {subjects}, not {digest}"]
    pred = st.get("predicate") or {}
    try:
        provenance.validate({**st, "_type": provenance.STATEMENT_TYPE})  # cosign wraps it in Statement v0.1; the predicate is what is checked
    except provenance.ProvenanceError as exc:
        return [str(exc)]
    params = pred.get("buildDefinition", {}).get("externalParameters", {})
    if params.get("runtime") != r.id:
        return [f"the statement is of runtime {params.get('runtime')!r}, not {r.id}"]
    want = {i.name: i.digest for i in provenance.inputs(schedule, r, build_image)}
    named = {
        d.get("name"): d.get("digest")
        for d in pred["buildDefinition"].get("resolvedDependencies", [])
        if not str(d.get("name")).startswith("source:")
    }
    problems = [
        f"{n}: the statement names {_d(named[n])}, the lock pins {_d(want[n])}" for n in sorted(want.keys() & named.keys()) if named[n] != want[n]
    ]
    problems += [f"{n}: the statement names it, the lock pins no such input" for n in sorted(named.keys() - want.keys())]
    problems += [f"{n}: the lock pins it, the statement does not name it" for n in sorted(want.keys() - named.keys())]
    return problems


def _d(digest: dict[str, str] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((digest or {}).items())) or "no digest"


def _sbom(schedule: Schedule, r: Runtime, build_image: bool, ref: str, labels: dict[str, str], pol: signing.Policy) -> tuple[bool, str]:
    try:
        docs = sbom.documents(schedule, r, build_image)
    except GeneratorError as exc:
        return False, f"this checkout cannot make the SBOM: {exc}"
    problems = []
    for fmt, text in sorted(docs.items()):
        label, want = sbom.LABEL[fmt], sbom.sha256_of(text)
        if labels.get(label) != want:
            problems.append(f"label {label} is {labels.get(label) or 'missing'}, the lock's {fmt} document has sha256 {want}")
        try:
            attested = [st.get("predicate") for st in signing.attestations(ref, pol, signing.SBOM_TYPE[fmt])]
        except signing.SigningError as exc:
            problems.append(f"no {fmt} attestation signed by {pol.describe()}: {exc}")
            continue
        if json.loads(text) not in attested:
            problems.append(f"the signed {fmt} attestation is not the document the lock makes (sha256 {want})")
    if problems:
        return False, "; ".join(problems)
    return True, f"labels and signed attestations hold the SPDX and CycloneDX documents this checkout's lock makes ({len(docs)} documents)"
