"""What a number depends on besides its config: the code and the machine.

A bundle records these so that ``mucomp reproduce`` can say *why* two runs may differ before it
compares them, and whether it may demand exact equality:

- :func:`code_identity`: mucomp's version, the git commit of its checkout (when there is one) and a
  sha256 of its own source files, so that a Space or a pip install without ``.git`` still names
  the exact code;
- :func:`environment`: python, torch, numpy and the other numeric libraries, the device and its
  name (the CPU model on a CPU), the precision settings and torch's thread count;

The data's identities live with the data: :func:`mucomp.data.data_sha256` and
:attr:`mucomp.data.Scenario.forget_sha256`.

:data:`EXACT_KEYS` are the fields that must agree for a rerun to be expected bit for bit equal
(the same CPU, the same versions); :func:`environment_differences` lists those that do not.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Libraries whose versions change figures (evaluation, MIA SVC, UMAP, CKA, the weights format).
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "umap-learn", "numba", "safetensors")
#: Environment fields that must be equal for a rerun to be expected exactly equal. The thread
#: count is among them: torch's CPU reductions split work by thread, so sums can differ in the
#: last bit with another count.
EXACT_KEYS = ("python", "packages", "mucomp", "source_sha256", "device", "device_name", "precision",
              "torch_threads", "machine")


@functools.lru_cache(maxsize=1)
def _source_sha256() -> str:
    """sha256 over mucomp's own ``.py`` and ``.json`` files (relative path and bytes, sorted).

    Cached per process: computed once, and a file edited afterwards does not change what this
    process runs anyway.
    """
    # The package folder only: the checkout around it (a virtual environment, data, results)
    # is not code that runs, and walking it took 7.5 s with a .venv inside.
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json") and p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout mucomp runs from, or ``(None, None)`` without one."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def code_identity() -> dict[str, Any]:
    """``{"mucomp", "git_commit", "git_dirty", "source_sha256"}`` of the code running now."""
    from mucomp import __version__

    commit, dirty = _git_state()
    return {"mucomp": __version__, "git_commit": commit, "git_dirty": dirty, "source_sha256": _source_sha256()}


def _cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: Any = None) -> dict[str, Any]:
    """The machine and libraries a run here would use (``device``: default the one mucomp chooses).

    Keys: ``python``, ``platform``, ``machine``, ``cpu``, ``packages`` (name -> version),
    ``mucomp``, ``source_sha256``, ``git_commit``, ``git_dirty``, ``device`` (``cpu`` / ``cuda`` / ``mps``),
    ``device_name``, ``precision`` (the evaluation's ``MUCOMP_PRECISION``, default dtype, float32
    matmul precision, TF32 and cuDNN flags, deterministic algorithms), ``torch_threads``, ``cuda`` (CUDA version or None).
    """
    import torch

    from mucomp import settings

    device = torch.device(device) if device is not None else settings.default_device()
    cpu = _cpu_name()
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        device_name = f"Apple MPS ({platform.machine()})"
    else:
        device_name = cpu
    from mucomp.precision import requested_precision

    precision = {
        "evaluation": requested_precision(),  # MUCOMP_PRECISION: fp32, or a bf16 / fp16 autocast forward
        "default_dtype": str(torch.get_default_dtype()).removeprefix("torch."),
        "float32_matmul": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if device.type == "cuda":
        precision.update(cuda_matmul_tf32=torch.backends.cuda.matmul.allow_tf32,
                         cudnn_tf32=torch.backends.cudnn.allow_tf32,
                         cudnn_deterministic=torch.backends.cudnn.deterministic,
                         cudnn_benchmark=torch.backends.cudnn.benchmark)
    code = code_identity()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        # torch's own version string names its build (e.g. +cu130, +cpu), which the metadata drops.
        "packages": {name: torch.__version__ if name == "torch" else _version(name) for name in PACKAGES},
        "mucomp": code["mucomp"],
        "source_sha256": code["source_sha256"],
        "git_commit": code["git_commit"],
        "git_dirty": code["git_dirty"],
        "device": device.type,
        "device_name": device_name,
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }


def environment_differences(recorded: dict[str, Any], here: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``[(field, recorded value, value here)]`` for every :data:`EXACT_KEYS` field that differs
    (nested dicts compared per entry, e.g. ``packages.torch``)."""
    out = []
    for key in EXACT_KEYS:
        a, b = recorded.get(key), here.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [(f"{key}.{k}", a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append((key, a, b))
    return out


class TorchvisionMismatchError(ImportError):
    """The installed torch and torchvision do not work together; the message names both versions
    and the pip line that installs a matching pair."""


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision release series built for a torch version (torch 2.m pairs with torchvision
    0.(m + 15) since torch 2.0: 2.9 -> 0.24, 2.14 -> 0.29), or None for another scheme."""
    parts = torch_version.split("+")[0].split(".")
    if len(parts) < 2 or parts[0] != "2" or not parts[1].isdigit():
        return None
    return f"0.{int(parts[1]) + 15}"


def import_torchvision(submodule: str = "models") -> Any:
    """``torchvision.<submodule>``, or :class:`TorchvisionMismatchError` saying what is wrong when
    torch and torchvision were built for each other's other releases (torchvision then fails with
    ``operator torchvision::nms does not exist``)."""
    import importlib

    try:
        return importlib.import_module(f"torchvision.{submodule}")
    except (RuntimeError, ImportError, AttributeError) as err:
        import torch

        found = _version("torchvision")
        fix = torchvision_fix(torch.__version__, found)
        if found is None:
            raise TorchvisionMismatchError(f"torchvision is not installed beside torch {torch.__version__}; run: {fix}") from err
        raise TorchvisionMismatchError(
            f"the installed torch {torch.__version__} and torchvision {found} do not match "
            f"({str(err).splitlines()[0][:120] if str(err) else type(err).__name__}); install a matching pair: "
            f"{fix}") from err


def torchvision_fix(torch_version: str, torchvision_version: str | None) -> str:
    """The pip line that installs the torchvision built for ``torch_version``: from PyTorch's index
    of the same build (``+cpu``, ``+cu130``, ...) when torch names one, and both packages reinstalled
    together when the installed torchvision is of the right series already (then the builds differ)."""
    pair = matching_torchvision(torch_version)
    build = torch_version.partition("+")[2]
    index = f" --index-url https://download.pytorch.org/whl/{build}" if build else ""
    if pair is None:
        return f"pip install --force-reinstall torch=={torch_version.split('+')[0]} torchvision{index}"
    if torchvision_version is not None and torchvision_version.split("+")[0].startswith(f"{pair}."):
        return f"pip install --force-reinstall torch=={torch_version.split('+')[0]} 'torchvision=={pair}.*'{index}"
    return f"pip install 'torchvision=={pair}.*'{index}"
