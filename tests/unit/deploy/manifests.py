"""Loading the deploy/ files the way their tools would: kustomize renders the k8s
overlays (``kubectl kustomize`` or ``kustomize build``, where either is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())


def kustomize_command() -> list[str] | None:
    """The command that renders a kustomization here, or None where none is installed."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's manifests as kustomize renders them."""
    command = kustomize_command()
    assert command is not None
    out = subprocess.run(
        [*command, str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def manifest_files() -> list[dict[str, Any]]:
    """Every object under deploy/k8s, unrendered (kustomizations and JSON patches left out)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        # JSON patches (lists of operations) are not objects; kustomize applies them.
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict))
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    return found
