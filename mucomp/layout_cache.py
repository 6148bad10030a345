"""A machine-local cache of UMAP layouts, keyed by everything a layout depends on.

A seeded UMAP fit is a pure function of its inputs on one machine and set of library versions
(:mod:`mucomp.embedding`), so a layout once computed is read back instead of fitted again when
exactly the same inputs come back: a reference prepared in a second store, an experiment whose
model reproduces bit for bit (``mucomp reproduce``, the same configuration run again), the app
and the CLI working on different homes. A fit costs about 1 s on digits' 1,347 points and grows
linearly with the points; a hit costs reading 2 x 8 bytes per point.

The key (:func:`layout_key`) is the SHA-256 of the float32 features (shape and bytes), the seed,
the starting layout (or none), UMAP's settings, the versions of umap-learn, numba, numpy and
Python, and the CPU numba compiles for. One different feature bit is another key: a cached layout
is never that of other inputs.

Files: ``$MUCOMP_CACHE_DIR/layouts/<key>.npy`` (default ``~/.cache/mucomp``, beside numba's and
pip's caches; outside ``$MUCOMP_HOME`` because one machine's homes share it), float64 ``[n, 2]``,
written atomically. A file that cannot be read, has the wrong shape or is not finite is ignored
and replaced. At most :data:`MAX_FILES` are kept (the oldest go first).
``MUCOMP_CACHE_DIR=off`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import threading
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

#: Layout files kept; beyond this the least recently written go (digits: 21 kB each).
MAX_FILES = 2000
_OFF = ("off", "0", "false", "no")


def cache_dir() -> Path | None:
    """The layout cache folder, or ``None`` when ``MUCOMP_CACHE_DIR`` turns the cache off."""
    configured = os.environ.get("MUCOMP_CACHE_DIR", "").strip()
    if configured.lower() in _OFF:
        return None
    root = Path(configured).expanduser() if configured else Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mucomp"
    return root / "layouts"


@lru_cache(maxsize=1)
def _environment() -> str:
    """What the same inputs' layout may depend on besides the inputs (fixed per process)."""
    versions = {}
    for package in ("umap-learn", "numba", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:  # the CPU numba generates code for (fastmath may round differently on another one)
        import llvmlite.binding as llvm

        cpu = f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"
    except Exception:  # noqa: BLE001 - no llvmlite: the architecture alone
        cpu = platform.machine()
    return json.dumps({"versions": versions, "python": sys.version, "cpu": cpu}, sort_keys=True)


def layout_key(features: np.ndarray, seed: int, init: np.ndarray | None, params: dict) -> str:
    """The cache key of one fit: ``features`` ``[n, d]`` (hashed as float32, as UMAP reads them),
    ``seed``, ``init`` ``[n, 2]`` or ``None``, UMAP's ``params``; 64 hex digits."""
    digest = hashlib.sha256()
    x = np.ascontiguousarray(features, dtype=np.float32)
    digest.update(json.dumps({"shape": x.shape, "seed": int(seed), "params": params}, sort_keys=True).encode())
    digest.update(x.tobytes())
    if init is not None:
        start = np.ascontiguousarray(init, dtype=np.float32)
        digest.update(json.dumps({"init": start.shape}).encode())
        digest.update(start.tobytes())
    digest.update(_environment().encode())
    return digest.hexdigest()


def read_layout(key: str, n: int) -> np.ndarray | None:
    """The cached float64 ``[n, 2]`` layout of ``key``, or ``None`` (off, absent or unusable)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        layout = np.load(folder / f"{key}.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if layout.dtype != np.float64 or layout.shape != (n, 2) or not np.isfinite(layout).all():
        return None
    return layout


def write_layout(key: str, layout: np.ndarray) -> None:
    """Store ``layout`` under ``key`` (atomically); a cache that cannot be written is skipped."""
    folder = cache_dir()
    if folder is None:
        return
    temporary = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            np.save(handle, np.ascontiguousarray(layout, dtype=np.float64), allow_pickle=False)
        os.replace(temporary, folder / f"{key}.npy")
        _prune(folder)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk: no half-written file left behind
            temporary.unlink(missing_ok=True)


def _prune(folder: Path) -> None:
    files = list(folder.glob("*.npy"))
    if len(files) <= MAX_FILES:
        return
    by_age = sorted(files, key=lambda path: path.stat().st_mtime)
    for path in by_age[: len(files) - MAX_FILES]:
        path.unlink(missing_ok=True)
