"""The files of the audits' model caches (U-LiRA's shadow pairs, the ensembles' members): written
atomically, so a killed writer leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def save_npz(path: Path, **arrays: Any) -> None:
    """``np.savez`` of ``arrays`` to ``path`` under a temporary name, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}-{secrets.token_hex(3)}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def write_description(folder: Path, description: dict) -> None:
    """``folder/spec.json``: what the cached files of ``folder`` are made of (written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "spec.json"
    if not target.exists():
        tmp = folder / f".spec-{secrets.token_hex(3)}.json"
        tmp.write_text(json.dumps(description, indent=1, sort_keys=True, default=str))
        os.replace(tmp, target)
