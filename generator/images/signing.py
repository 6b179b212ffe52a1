"""Signing and attesting published images with cosign, and reading the signing policy of the schedule.

`sign` is what the build workflow runs after a push: cosign signs the image by digest, then attaches
its SLSA v1 provenance (made from the lock, generator/images/provenance.py) and its two SBOMs as
signed in-toto attestations, each with the same identity. The identity is the workflow's own (keyless:
Fulcio certifies the OIDC token GitHub gives the job, and Rekor logs it), or a maintainer's key pair
(`--key`; its public half sits in the repository and `publish.signing.public_key` names it). With a
key, nothing is sent to the transparency log: the repository's public key is the root of trust, and
verification says so (`--insecure-ignore-tlog`).

A registry on this machine (127.0.0.1, localhost) is spoken to over plain http, as skopeo is told too.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.core import registry
from generator.core.errors import GeneratorError, InputError
from generator.images import cosign
from generator.schedule.runtimes import Schedule

# cosign's --type names and the predicate types they stand for
TYPES = {"slsaprovenance1": "https://slsa.dev/provenance/v1", "spdxjson": "https://spdx.dev/Document", "cyclonedx": "https://cyclonedx.org/bom"}
SBOM_TYPE = {"spdx-json": "spdxjson", "cyclonedx-json": "cyclonedx"}
PASSWORD_ENV = "COSIGN_PASSWORD"  # cosign's own: the key's password ("" for none)


class SigningError(GeneratorError):
    """cosign refused or failed; the message carries its last line."""


class PolicyError(InputError):
    """publish.signing names no identity, both, or a public key that is not in the repository."""


@dataclass(frozen=True)
class Policy:
    """Who must have signed: a public key (PEM file) or a keyless identity and its issuer."""

    public_key: Path | None = None
    identity: str | None = None
    issuer: str | None = None

    def describe(self) -> str:
        return f"key {self.public_key}" if self.public_key else f"identity {self.identity} (issuer {self.issuer})"

    def cosign_args(self) -> list[str]:
        if self.public_key is not None:
            return ["--key", str(self.public_key), "--insecure-ignore-tlog=true"]
        return ["--certificate-identity", str(self.identity), "--certificate-oidc-issuer", str(self.issuer)]


def policy(schedule: Schedule) -> Policy | None:
    """The schedule's `publish.signing`, or None where it sets none (images are then not verified)."""
    signing = schedule.model.publish.signing
    if signing is None:
        return None
    where = f"{schedule.path.name}: publish.signing"
    if (signing.keyless is None) == (signing.public_key is None):
        raise PolicyError(f"{where}: give exactly one of keyless (identity, issuer) and public_key (a file in the repository)")
    if signing.keyless is not None:
        return Policy(identity=signing.keyless.identity, issuer=signing.keyless.issuer)
    root = schedule.path.resolve().parent
    key = (root / str(signing.public_key)).resolve()
    if not key.is_relative_to(root) or not key.is_file():
        raise PolicyError(f"{where}.public_key: {signing.public_key} is not a file in the repository ({root})")
    return Policy(public_key=key)


def _registry_args(ref: str) -> list[str]:
    """A registry on this machine speaks http (the tests', a developer's); every other one https."""
    return ["--allow-http-registry", "--allow-insecure-registry"] if registry.on_this_machine(ref) else []


def run(args: list[str], ref: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> str:
    """cosign's stdout; SigningError with its last line of stderr."""
    cmd = [cosign.find(), *args[:1], *_registry_args(ref), *args[1:]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SigningError(f"cosign {args[0]} {ref}: no answer within {timeout:g} s") from exc
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise SigningError(f"cosign {args[0]} {ref}: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _key_args(key: Path | None) -> tuple[list[str], dict[str, str]]:
    if key is None:
        return [], {}  # keyless: cosign takes the workflow's OIDC token (GitHub's id-token permission)
    return ["--key", str(key), "--tlog-upload=false"], {PASSWORD_ENV: os.environ.get(PASSWORD_ENV, "")}


def sign(ref: str, key: Path | None) -> None:
    """Sign `ref` (NAME@sha256:…) with `key`, or keyless."""
    args, env = _key_args(key)
    run(["sign", "--yes", *args, ref], ref, env)


def attest(ref: str, predicate: str, kind: str, key: Path | None) -> None:
    """Attach `predicate` (a JSON text) to `ref` as a signed in-toto attestation of cosign type `kind`."""
    args, env = _key_args(key)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="predicate-") as tmp:
        tmp.write(predicate)
        tmp.flush()
        run(["attest", "--yes", *args, "--type", kind, "--predicate", tmp.name, ref], ref, env)


def verify_signature(ref: str, pol: Policy) -> None:
    """SigningError unless cosign finds a signature of `ref` by the policy's signer."""
    run(["verify", *pol.cosign_args(), "--output", "json", ref], ref)


def attestations(ref: str, pol: Policy, kind: str) -> list[dict[str, Any]]:
    """The in-toto statements of cosign type `kind` attached to `ref` and signed by the policy's signer
    (cosign verify-attestation checks each signature); SigningError when there is none."""
    out = run(["verify-attestation", *pol.cosign_args(), "--type", kind, "--output", "json", ref], ref)
    statements = []
    for line in out.splitlines():
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
            statements.append(json.loads(base64.b64decode(envelope["payload"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise SigningError(f"cosign verify-attestation {ref}: an envelope that is not a DSSE in-toto statement ({exc})") from exc
    return statements
