"""A model version: one directory, described by its manifest.json.

The manifest records the taxonomy hash, the backbone and its provenance, the
label maps, how to read the heads, the metrics on the evaluation split, and the
sha256 of every file.  A version whose files do not match is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = 1


class ModelVersionError(RuntimeError):
    """A model version that cannot be used; the message says why."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = Path(version_dir) / MANIFEST
    if not path.exists():
        raise ModelVersionError(f"{version_dir}: no {MANIFEST}; not a model version directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelVersionError(f"{path}: unreadable manifest: {exc}") from None
    for key in ("version", "taxonomy_hash", "labels", "backbone", "files"):
        if key not in manifest:
            raise ModelVersionError(f"{path}: manifest has no {key!r}")
    if manifest.get("format", FORMAT) > FORMAT:
        raise ModelVersionError(
            f"{path}: manifest format {manifest['format']} is newer than this tsur understands ({FORMAT})"
        )
    return manifest


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> None:
    """Record file hashes and write atomically, so a reader sees the old or the new manifest."""
    version_dir = Path(version_dir)
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest["files"] = {
        p.relative_to(version_dir).as_posix(): sha256_file(p)
        for p in sorted(version_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp")
    }
    tmp = version_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(version_dir / MANIFEST)


def verify_files(version_dir: Path, manifest: dict[str, Any], required: tuple[str, ...] = ()) -> None:
    version_dir = Path(version_dir)
    for name in required:
        if name not in manifest["files"]:
            raise ModelVersionError(
                f"{version_dir}: {name} is not part of this version (was it exported? run `tsur export`)"
            )
    for name, expected in manifest["files"].items():
        path = version_dir / name
        if not path.exists():
            raise ModelVersionError(f"{version_dir}: {name} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelVersionError(
                f"{version_dir}: {name} does not match its hash in the "
                f"manifest (corrupted or changed after training)"
            )


def check_taxonomy(manifest: dict[str, Any], taxonomy_hash: str, where: str) -> None:
    if manifest["taxonomy_hash"] != taxonomy_hash:
        raise ModelVersionError(
            f"{where}: trained for taxonomy {manifest['taxonomy_hash'][:19]}…, but the taxonomy "
            f"in use is {taxonomy_hash[:19]}…; retrain the model for the current taxonomy"
        )


def served_metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    """Evaluation scores of the exported graph if there is one, else of the PyTorch model."""
    export = manifest.get("export") or {}
    return export.get("metrics") or manifest.get("metrics", {}).get("eval", {})
