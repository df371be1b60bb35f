"""Model versions on disk and the pointer to the one being served.

`<models dir>/<version>/` holds each version; `<models dir>/CURRENT` names the
served one and is replaced atomically (write a temporary file, then rename), so
a reader sees the old pointer or the new one, never half of either.
`history.jsonl` records every switch, which is what rollback walks back.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.manifest import MANIFEST, ModelVersionError, read_manifest
from model.paths import models_dir

CURRENT = "CURRENT"
HISTORY = "history.jsonl"


class ModelRegistry:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else models_dir()

    def path(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ModelVersionError(f"invalid version name {version!r}")
        return self.root / version

    def versions(self) -> list[dict[str, Any]]:
        if not self.root.exists():
            return []
        found = []
        for directory in sorted(self.root.iterdir()):
            if directory.is_dir() and (directory / MANIFEST).exists():
                try:
                    found.append(read_manifest(directory))
                except ModelVersionError:
                    continue
        return sorted(found, key=lambda m: m.get("created", ""))

    def current(self) -> str | None:
        pointer = self.root / CURRENT
        if not pointer.exists():
            return None
        value = pointer.read_text(encoding="utf-8").strip()
        return value or None

    def current_path(self) -> Path | None:
        version = self.current()
        return self.path(version) if version else None

    def set_current(self, version: str, reason: str, kind: str = "promote", actor: str = "cli") -> None:
        if not (self.path(version) / MANIFEST).exists():
            raise ModelVersionError(f"no model version {version!r} in {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        tmp = self.root / f".{CURRENT}.{os.getpid()}.tmp"
        tmp.write_text(version + "\n", encoding="utf-8")
        os.replace(tmp, self.root / CURRENT)
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "from": previous,
            "to": version,
            "kind": kind,
            "reason": reason,
            "by": actor,
        }
        with (self.root / HISTORY).open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def previous(self) -> str | None:
        """The version that was served before the current one was promoted.

        Rollbacks are skipped, so rolling back twice goes two promotions back
        instead of toggling between two versions.
        """
        current = self.current()
        for entry in reversed(self.history()):
            if entry["to"] == current and entry.get("kind", "promote") == "promote":
                return entry["from"]
        return None
