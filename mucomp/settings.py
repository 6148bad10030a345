"""Process-wide settings read from the environment: where files live and which device runs torch.

``MUCOMP_HOME`` (default ``./runs``) holds everything mucomp writes: ``data/`` (downloaded data
sets), ``references/`` (locally trained reference models) and ``experiments/`` (the store); only
the machine-local UMAP layout cache lives outside it (:mod:`mucomp.layout_cache`,
``MUCOMP_CACHE_DIR``), since one machine's homes share it.
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
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else default


def requested_torch_threads() -> int | None:
    """``MUCOMP_TORCH_THREADS`` as a positive int, else None (not set)."""
    return env_int("MUCOMP_TORCH_THREADS", 0) or None


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def torch_threads(workers: int = 1) -> int:
    """Torch threads of each process that runs experiments: ``MUCOMP_TORCH_THREADS`` when set,
    else this machine's available cores shared out among ``workers`` processes (at least 1).

    The one default of the app's workers, ``mucomp run`` and the Ray tasks, so that the same
    config is timed and computed alike wherever it runs (Home and ``mucomp --help`` state it).
    The references do not depend on it: they train with :func:`reference_threads`.
    """
    return requested_torch_threads() or max(1, available_cores() // max(1, int(workers)))


def threads_statement(workers: int | None = None) -> str:
    """One sentence on the thread counts runs use here (Home and ``mucomp --help`` show it)."""
    workers = workers if workers is not None else env_int("MUCOMP_WORKERS", 1)
    threads = torch_threads(workers)
    source = ("MUCOMP_TORCH_THREADS" if requested_torch_threads() else
              f"this machine's {available_cores()} available cores shared out among {workers} worker(s)")
    return (f"Experiments run with {threads} torch thread(s) per process ({source}), in the app's workers and "
            f"in `mucomp run` alike; references and U-LiRA shadows always train with {reference_threads()}, "
            "so their weights do not depend on it.")


#: Torch threads every reference (and U-LiRA shadow) trains with, whatever the process's own
#: setting: float reductions split across another number of threads can round differently
#: (measured: digits' Retrained weights at 3 threads differ from those at 1, 2 and 4), and one
#: scenario must give one set of reference weights in the app, the CLI, Ray and ``reproduce``.
REFERENCE_THREADS = 2


def reference_threads() -> int:
    """Torch threads the references train with: ``MUCOMP_REFERENCE_THREADS`` when set, else
    :data:`REFERENCE_THREADS`. Another value can give other weights, so it names its own cache
    files and reference ids (:func:`mucomp.references.cache_path`)."""
    return env_int("MUCOMP_REFERENCE_THREADS", REFERENCE_THREADS)


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
