"""Process-wide settings read from the environment: where files live and which device runs torch.

``MUCOMP_HOME`` (default ``./runs``) holds everything mucomp writes: ``data/`` (downloaded data
sets), ``references/`` (locally trained reference models) and ``experiments/`` (the store).
``MUCOMP_DEVICE`` overrides the device choice (``cuda`` > ``mps`` > ``cpu``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only when a device is asked for: `mucomp list` never needs it
    import torch


def home() -> Path:
    """The root folder for everything mucomp stores (``$MUCOMP_HOME``, default ``./runs``)."""
    return Path(os.environ.get("MUCOMP_HOME", "runs")).expanduser()


def data_dir() -> Path:
    """Where torchvision data sets are downloaded to (``$MUCOMP_HOME/data``)."""
    return home() / "data"


def references_dir() -> Path:
    """Where locally trained reference models are cached (``$MUCOMP_HOME/references``)."""
    return home() / "references"


def env_int(name: str, default: int) -> int:
    """A positive integer environment variable, ``default`` when unset or not a positive integer."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


def torch_threads() -> int | None:
    """``MUCOMP_TORCH_THREADS`` as a positive int, else None (torch's own default then)."""
    return env_int("MUCOMP_TORCH_THREADS", 0) or None


def default_device() -> torch.device:
    """The device torch work runs on: ``$MUCOMP_DEVICE`` if set, else cuda, mps, cpu."""
    import torch

    requested = os.environ.get("MUCOMP_DEVICE", "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise ValueError(
                f"MUCOMP_DEVICE={requested!r} is not a torch device; use cpu, cuda, cuda:0 or mps"
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("MUCOMP_DEVICE asks for cuda but no CUDA GPU is available; unset it or use cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
