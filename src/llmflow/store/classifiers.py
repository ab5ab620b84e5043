"""Trained classifiers and their calibrations, versioned in the state directory.

`$LLMFLOW_HOME/classifiers/<workflow>/<step>/v0001/` holds `model.skops` (the ml tier, saved
with skops: never pickle) and `meta.json` (thresholds, where the training data came from,
measured accuracy). A new training or calibration writes a new version; the newest is used,
and older ones stay for comparison or rollback (delete a version folder to roll back).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_VERSION = re.compile(r"^v(\d{4,})$")


class ClassifierVersions:
    """The versions of one workflow step's classifier."""

    def __init__(self, home: Path, workflow: str, step: str) -> None:
        self.root = home / "classifiers" / workflow / step

    def versions(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _VERSION.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest complete version (one whose meta.json was written last)."""
        complete = [p for p in self.versions() if (p / "meta.json").is_file()]
        return complete[-1] if complete else None

    def create(self) -> Path:
        """A new, empty version folder (write meta.json last: it marks the version complete)."""
        versions = self.versions()
        number = int(versions[-1].name[1:]) + 1 if versions else 1
        path = self.root / f"v{number:04d}"
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise ConfigError(f"cannot create {path}: {e.strerror} (check LLMFLOW_HOME)") from e
        return path

    @staticmethod
    def read_meta(version: Path) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((version / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read {version / 'meta.json'}: {e}") from e
        return meta

    @staticmethod
    def write_meta(version: Path, meta: dict[str, Any]) -> None:
        (version / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
