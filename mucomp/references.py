"""The Original and Retrained reference models of a scenario.

- ``digits``: both are trained locally (seconds on a CPU) with :func:`mucomp.training.train`,
  seeded from the scenario seed, and cached as safetensors under
  ``$MUCOMP_HOME/references/<dataset>/<arch>/<recipe hash>/``. The Retrained model never sees a
  forget-class image. A second request loads from that cache.
- ``cifar10`` and ``fashion_mnist``: the published checkpoints on the Hugging Face Hub (repos in
  :data:`mucomp.data.DATASETS` for the data set's default architecture, in :data:`HUB_REPOS` for
  the others: ViT-B/16 on CIFAR-10), fetched with ``hf_hub_download`` (its cache, or
  ``$MUCOMP_REFERENCE_DIR`` as a ``local_dir``), read with ``torch.load(weights_only=True)``
  and loaded with ``strict=True``. Fashion-MNIST references can also be trained locally
  (``source="train"``; a GPU is advised).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mucomp import settings
from mucomp.config import ScenarioDefinition
from mucomp.data import DatasetSpec, Scenario, derive_seed
from mucomp.locks import locked
from mucomp.models import expected_weights, model_from_state_dict, starting_model
from mucomp.progress import CancelFn, ProgressFn
from mucomp.recipes import recipe_for, recipe_hash
from mucomp.training import TrainRecipe, fixed_torch_threads, train
from mucomp.weights import (
    WeightsFileError,
    check_weights,
    first_line,
    read_weights,
    safetensors_metadata,
    unwrap_state_dict,
)

KINDS = ("original", "retrained")

#: Published reference checkpoints of the architectures that are not their data set's default:
#: architecture -> Hub repo (the file names: :func:`hub_filename`).
HUB_REPOS: dict[str, str] = {"vit_b16_cifar": "Yurim0507/vit-base-16-cifar10-unlearning"}


def hub_repo(scenario: ScenarioDefinition) -> str | None:
    """The Hub repo holding the published references of ``scenario``'s architecture (None: none)."""
    if scenario.arch in HUB_REPOS:
        return HUB_REPOS[scenario.arch]
    return scenario.spec.hub_repo if scenario.arch == scenario.spec.arch else None


class ReferenceUnavailableError(RuntimeError):
    """A reference model could not be obtained; the message says what to do."""


@dataclass
class ReferenceModel:
    """A loaded reference model (in eval mode) and where it came from.

    ``source`` is ``"trained"`` (just trained and cached), ``"cache"`` (loaded from the local
    cache) or ``"hub"`` (a published checkpoint); ``path`` is the file it was read from or
    written to; ``seconds`` the time taken to obtain it.
    """

    kind: str
    model: nn.Module
    source: str
    path: Path
    seconds: float
    checkpoint_id: str


def hub_filename(spec: DatasetSpec, kind: str, forget_class: int, arch: str | None = None) -> str:
    """The published checkpoint file of a reference model on the Hub (``arch``: default the data
    set's)."""
    if arch == "vit_b16_cifar":
        return "vit_base_16_cifar10_original.pth" if kind == "original" else f"vit_base_16_cifar10_forget{forget_class}.pth"
    if arch not in (None, spec.arch):
        raise ValueError(f"{arch} on {spec.name} has no published reference checkpoints; its references are trained locally")
    if spec.name == "cifar10":
        return "resnet18_cifar10_full.pth" if kind == "original" else f"resnet18_cifar10_no_{spec.class_names[forget_class]}.pth"
    if spec.name == "fashion_mnist":
        return "resnet18_fashionmnist_original.pth" if kind == "original" else f"resnet18_fashionmnist_forget{forget_class}.pth"
    raise ValueError(f"{spec.name} has no published reference checkpoints; its references are trained locally")


def default_source(scenario: ScenarioDefinition) -> str:
    """``"hub"`` for a one-class scenario of an architecture with published checkpoints (the
    ResNet-18s, ViT-B/16), else ``"train"`` (digits, ``fmnist_cnn``, and forget sets the
    published files do not serve)."""
    return "hub" if scenario.forget_class is not None and hub_repo(scenario) is not None else "train"


def cache_path(scenario: Scenario, kind: str, recipe: TrainRecipe | None = None) -> Path:
    """Where a locally trained reference of ``scenario`` is cached.

    The Original does not depend on the forget class, so every scenario with the same data set and
    seed shares it.
    """
    _check_kind(kind)
    spec = scenario.spec
    recipe = recipe or recipe_for(spec.name, scenario.arch)
    folder = settings.references_dir() / spec.name / scenario.arch / recipe_hash(scenario.arch, recipe)
    forget = scenario.forget_set
    # A class set is the same for every data seed; a random set is drawn with it.
    drawn = f"-d{scenario.data_seed}" if forget.kind == "random" else ""
    name = f"original-s{scenario.train_seed}" if kind == "original" else f"retrained-{forget.key}-s{scenario.train_seed}{drawn}"
    threads = settings.reference_threads()
    # Weights trained with another thread count may differ: they never share a file or an id.
    trained_with = "" if threads == settings.REFERENCE_THREADS else f"-t{threads}"
    return folder / f"{name}{trained_with}.safetensors"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; use one of {KINDS}")


def load_reference(
    scenario: Scenario,
    kind: str,
    *,
    source: str | None = None,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
) -> ReferenceModel:
    """The ``kind`` (``"original"`` or ``"retrained"``) reference model of ``scenario``.

    ``source``: ``"train"`` (train locally, or load the local cache) or ``"hub"`` (published
    checkpoint); default :func:`default_source`. ``progress(epoch, total, loss=..., reference=kind)``
    reports local training. The model is returned on ``device`` in eval mode.
    """
    _check_kind(kind)
    source = source or default_source(scenario)
    device = torch.device(device) if device is not None else settings.default_device()
    if source == "hub":
        ref = _load_from_hub(scenario, kind)
    elif source == "train":
        ref = _train_or_load(scenario, kind, device, progress, cancelled)
    else:
        raise ValueError(f"unknown reference source {source!r}; use 'train' or 'hub'")
    ref.model.to(device).eval()
    return ref


def load_references(scenario: Scenario, **kwargs) -> tuple[ReferenceModel, ReferenceModel]:
    """``(original, retrained)`` for ``scenario``; keyword arguments go to :func:`load_reference`."""
    return load_reference(scenario, "original", **kwargs), load_reference(scenario, "retrained", **kwargs)


def _train_or_load(
    scenario: Scenario,
    kind: str,
    device: torch.device,
    progress: ProgressFn | None,
    cancelled: CancelFn | None,
) -> ReferenceModel:
    from safetensors.torch import load_file, save_file

    spec = scenario.spec
    recipe = recipe_for(spec.name, scenario.arch)
    path = cache_path(scenario, kind, recipe)
    checkpoint_id = f"{path.parent.name}/{path.stem}"
    # One training per cache file across threads AND processes: the first holder trains and writes
    # the file atomically, the others wait (cancellably) and then load it from the cache. The lock
    # file sits next to the cache file. filelock, because it is well kept, cross-platform and what
    # huggingface_hub and torch use to guard their own caches (more in mucomp.locks).
    waiting_for = f"another run to finish training the {kind} reference"
    with locked(path.with_suffix(".lock"), cancelled=cancelled, waiting_for=waiting_for):
        start = time.perf_counter()
        if path.exists():
            try:
                model = model_from_state_dict(scenario.arch, spec.num_classes, load_file(str(path)))
                return ReferenceModel(kind, model, "cache", path, time.perf_counter() - start, checkpoint_id)
            except Exception:
                # A damaged cache file is only a cache: train again and replace it.
                path.unlink(missing_ok=True)
        seed = derive_seed(scenario.train_seed, f"reference-{kind}")
        model = starting_model(scenario.arch, spec.num_classes, seed)  # ImageNet weights for ViT-B/16
        data = scenario.data
        indices = scenario.retain_indices if kind == "retrained" else np.arange(len(data.train))

        def report(epoch: int, total: int, **figures) -> None:
            if progress is not None:
                progress(epoch, total, reference=kind, **figures)

        # A fixed thread count: the weights must not depend on the process's setting.
        with fixed_torch_threads(settings.reference_threads()):
            train(model, data.train, indices, recipe, seed, device=device, progress=report, cancelled=cancelled)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp), metadata=safetensors_metadata(kind=kind, scenario=scenario.key,
                                                                 recipe=json.dumps(recipe.as_dict(), sort_keys=True)))
        os.replace(tmp, path)
        return ReferenceModel(kind, model, "trained", path, time.perf_counter() - start, checkpoint_id)


def _load_from_hub(scenario: Scenario, kind: str) -> ReferenceModel:
    spec = scenario.spec
    repo = hub_repo(scenario)
    if repo is None:
        raise ReferenceUnavailableError(
            f"{spec.label} with {scenario.arch} has no published references; use source='train'"
        )
    if scenario.forget_class is None:
        raise ReferenceUnavailableError(
            f"the published {spec.label} references serve one forgotten class; for the forget set "
            f"{scenario.forget_set.text} the references are trained locally: use source 'train' "
            "(`--source train`; a GPU is advised)"
        )
    filename = hub_filename(spec, kind, scenario.forget_class, scenario.arch)
    start = time.perf_counter()
    path = download_checkpoint(repo, filename)
    model = load_checkpoint(path, scenario.arch, spec.num_classes)
    return ReferenceModel(kind, model, "hub", path, time.perf_counter() - start, f"{repo}/{filename}")


def download_checkpoint(repo_id: str, filename: str) -> Path:
    """Fetch ``filename`` from Hub repo ``repo_id`` (or find it offline) and return its path.

    Uses ``$MUCOMP_REFERENCE_DIR`` as ``local_dir`` when set, else the Hugging Face cache
    (``$HF_HUB_CACHE``). Raises :class:`ReferenceUnavailableError` with what to do.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    local_dir = os.environ.get("MUCOMP_REFERENCE_DIR") or None
    try:
        return Path(hf_hub_download(repo_id, filename, local_dir=local_dir))
    except LocalEntryNotFoundError as err:
        where = f" or in {local_dir}" if local_dir else ""
        raise ReferenceUnavailableError(
            f"{filename} from the Hub repo {repo_id} is not in the local cache{where}, and the Hub "
            f"cannot be reached (offline or HF_HUB_OFFLINE=1). Connect to the network once, or run "
            f"`hf download {repo_id} {filename} --local-dir DIR` elsewhere and set MUCOMP_REFERENCE_DIR=DIR."
        ) from err
    except (EntryNotFoundError, RepositoryNotFoundError) as err:
        raise ReferenceUnavailableError(f"the Hub repo {repo_id} has no file {filename} ({err})") from err
    except (HfHubHTTPError, OSError) as err:
        raise ReferenceUnavailableError(
            f"downloading {filename} from {repo_id} failed ({type(err).__name__}: {err}); check the "
            "network and try again"
        ) from err


def load_checkpoint(path: Path, arch: str, num_classes: int) -> nn.Module:
    """Read a ``.pth`` / ``.pt`` (``torch.load(weights_only=True)``) or ``.safetensors`` file
    (:func:`~mucomp.weights.read_weights`) and load it into ``arch`` with ``strict=True``.

    The file is someone else's (a Hub download): before ``torch.load`` sees it, it is refused when it
    is larger, or (a ``torch.save`` zip) unpacks to more, than :func:`checkpoint_limit` allows (the
    uploads' check, :func:`mucomp.uploads.check_unpacked_size`), and before anything evaluates it,
    when its weights hold NaN or infinite values.

    Raises ValueError for an unreadable, oversized or non-finite file (an
    :class:`~mucomp.uploads.UploadError` for the size) and
    :class:`~mucomp.weights.StateDictMismatchError` (which names the differing keys and shapes)
    for weights of another architecture.
    """
    from mucomp.uploads import check_unpacked_size

    path = Path(path)
    limit = checkpoint_limit(arch, num_classes)
    try:
        size = path.stat().st_size
        if size > limit:
            raise ValueError(f"{path.name} is {size / 1024**2:.1f} MB, more than a {arch} checkpoint can be "
                             f"({limit / 1024**2:.0f} MB); it was not loaded. Delete it and download it again.")
        data = path.read_bytes()
        check_unpacked_size(path.name, data, limit)
        state = read_weights(path.name, data)
    except (WeightsFileError, OSError) as err:
        detail = err.detail if isinstance(err, WeightsFileError) else f"{type(err).__name__}: {first_line(err)}"
        raise ValueError(
            f"{path.name} is not a readable PyTorch or safetensors weights file ({detail}). "
            "Delete it and download or export it again."
        ) from err
    state = unwrap_state_dict(state)
    check = check_weights(state, expected_weights(arch, num_classes))
    if check.fits and check.non_finite:
        keys = ", ".join(check.non_finite[:5]) + (f" and {len(check.non_finite) - 5} more" if len(check.non_finite) > 5 else "")
        raise ValueError(f"{path.name}: the weights hold NaN or infinite values (at {keys}), so the model can't be "
                         "evaluated; it was not loaded. Delete it and download it again, or tell its publishers.")
    return model_from_state_dict(arch, num_classes, state)


def checkpoint_limit(arch: str, num_classes: int) -> int:
    """The most bytes a downloaded checkpoint of ``arch`` may hold, packed or unpacked: twice its
    float32 state dict (a float64 file fits), and never less than an upload may
    (:data:`mucomp.uploads.MAX_UPLOAD_BYTES`)."""
    from mucomp import uploads

    tensors = expected_weights(arch, num_classes).values()
    state_bytes = sum(math.prod(shape) * dtype.itemsize for shape, dtype in tensors)
    return max(uploads.MAX_UPLOAD_BYTES, 2 * state_bytes)
