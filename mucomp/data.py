"""Data sets, scenarios and the fixed subsets every view reads.

Three data sets are registered in :data:`DATASETS`:

- ``digits`` (the default): scikit-learn's bundled 8x8 hand-written digits (1,797 images), split
  once into train and test with a fixed seeded stratified split. Needs no network.
- ``fashion_mnist`` and ``cifar10``: torchvision's loaders, downloaded on first use into
  ``$MUCOMP_HOME/data``. With no network (or ``MUCOMP_OFFLINE=1``) a missing data set raises
  :class:`DatasetUnavailableError` saying what is missing and how to get it.

Every split keeps its images as a ``uint8`` tensor of shape ``[N, C, H, W]`` and normalises a batch
only when it is used, so CIFAR-10 costs 150 MB in memory rather than 600 MB.

A :class:`Scenario` (data set, forget set, seeds, architecture) cuts the splits into forget / retain /
test-forget / test-retain indices straight from the label arrays, and draws the fixed,
class-balanced subsets that embeddings, CKA and the membership-inference attack read.
"""

from __future__ import annotations

import os
import threading
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mucomp import settings
from mucomp.forget_sets import ForgetSet, index_set, parse_forget
from mucomp.seeds import MAX_SEED as MAX_SEED  # re-exported: the seed bound lives in mucomp.seeds
from mucomp.seeds import validate_seed

# The registry lives in mucomp.specs (torch-free); re-exported here, its historical home.
from mucomp.specs import CIFAR10_CLASSES as CIFAR10_CLASSES
from mucomp.specs import DATASETS as DATASETS
from mucomp.specs import FASHION_CLASSES as FASHION_CLASSES
from mucomp.specs import DatasetSpec as DatasetSpec
from mucomp.specs import get_spec as get_spec

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SHARE = 0.25


class DatasetUnavailableError(RuntimeError):
    """A data set is not on disk and could not be downloaded; the message says what to do."""


@dataclass
class Split:
    """One split of a data set: ``images`` uint8 ``[N, C, H, W]`` and ``labels`` int64 ``[N]``."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _mean: torch.Tensor = field(init=False, repr=False)
    _std: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("Split.images must be a uint8 tensor of shape [N, C, H, W]")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("Split.labels must have one label per image")
        self.labels = self.labels.to(torch.int64)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def labels_np(self) -> np.ndarray:
        """The labels as a numpy int64 array ``[N]``."""
        return self.labels.numpy()

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 ``[n, C, H, W]`` -> float32 ``[n, C, H, W]``: scaled to [0, 1], then standardised."""
        return (images_uint8.float().div_(255.0) - self._mean) / self._std

    def batch(self, indices: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``[n, C, H, W]`` float32 and labels ``[n]`` for dataset indices."""
        index = _as_index(indices)
        return self.normalize(self.images[index]), self.labels[index]

    def display_images(self, indices: np.ndarray) -> np.ndarray:
        """Images for display: uint8 ``[n, H, W, C]`` (C = 1 or 3), unnormalised."""
        index = _as_index(indices)
        return self.images[index].permute(0, 2, 3, 1).contiguous().numpy()


def _as_index(indices: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Dataset indices ``[n]`` as an int64 tensor for indexing.

    A read-only array (a cached, frozen split index) is copied: torch cannot wrap it without warning.
    """
    if isinstance(indices, torch.Tensor):
        return indices.to(torch.int64)
    array = np.asarray(indices, dtype=np.int64)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


@dataclass
class LoadedDataset:
    """A data set in memory: its spec and its ``train`` and ``test`` splits."""

    spec: DatasetSpec
    train: Split
    test: Split
    root: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split {name!r}; use 'train' or 'test'")
        return self.train if name == "train" else self.test


_CACHE: dict[tuple[str, str], LoadedDataset] = {}
_CACHE_LOCK = threading.Lock()


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool | None = None) -> LoadedDataset:
    """Load a registered data set into memory (cached per process and root).

    Parameters
    ----------
    name:
        A key of :data:`DATASETS`.
    root:
        Folder for torchvision data sets; default ``$MUCOMP_HOME/data``. Ignored for ``digits``.
    download:
        Whether a missing torchvision data set may be downloaded. Default: yes, unless
        ``MUCOMP_OFFLINE=1``.

    Raises
    ------
    DatasetUnavailableError
        The files are not under ``root`` and could not be downloaded.
    """
    spec = get_spec(name)
    root_path = Path(root) if root is not None else settings.data_dir()
    key = (name, str(root_path.resolve()) if spec.needs_download else "")
    with _CACHE_LOCK:
        if key not in _CACHE:
            if name == "digits":
                _CACHE[key] = _load_digits(spec)
            else:
                if download is None:
                    download = os.environ.get("MUCOMP_OFFLINE", "") not in ("1", "true", "yes")
                _CACHE[key] = _load_torchvision(spec, root_path, download)
        return _CACHE[key]


def clear_dataset_cache() -> None:
    """Forget every data set loaded in this process (tests use it after rewriting files)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _load_digits(spec: DatasetSpec) -> LoadedDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # Values are 0..16; scale to 0..255 so every data set is stored the same way.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(labels.size),
        test_size=DIGITS_TEST_SHARE,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    train_idx.sort()
    test_idx.sort()

    def make(split_name: str, idx: np.ndarray) -> Split:
        return Split(
            split_name,
            torch.from_numpy(np.ascontiguousarray(images[idx])),
            torch.from_numpy(labels[idx]),
            spec.mean,
            spec.std,
        )

    return LoadedDataset(spec, make("train", train_idx), make("test", test_idx))


def _expected_files(spec: DatasetSpec, root: Path) -> str:
    if spec.name == "cifar10":
        return f"{root / 'cifar-10-batches-py'} (data_batch_1..5, test_batch, batches.meta)"
    return f"{root / 'FashionMNIST' / 'raw'} (train/t10k -images-idx3-ubyte and -labels-idx1-ubyte)"


def _load_torchvision(spec: DatasetSpec, root: Path, download: bool) -> LoadedDataset:
    from torchvision import datasets as tv

    cls = {"cifar10": tv.CIFAR10, "fashion_mnist": tv.FashionMNIST}[spec.name]

    def construct(train: bool, allow_download: bool):
        return cls(str(root), train=train, download=allow_download)

    splits = []
    for train in (True, False):
        try:
            raw = construct(train, False)
        except RuntimeError as missing:
            if not download:
                raise DatasetUnavailableError(
                    f"{spec.label} is not in {root} and downloads are off (offline mode). "
                    f"Expected {_expected_files(spec, root)}. Connect to the network and run "
                    f"`mucomp download {spec.name}`, or copy the files there."
                ) from missing
            try:
                root.mkdir(parents=True, exist_ok=True)
                raw = construct(train, True)
            except Exception as err:  # urllib, ssl and checksum errors all mean the same here
                raise DatasetUnavailableError(
                    f"{spec.label} is not in {root} and could not be downloaded "
                    f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no details'}). "
                    f"Connect to the network and run `mucomp download {spec.name}`, or copy "
                    f"{_expected_files(spec, root)} there yourself."
                ) from err
        data = raw.data
        if isinstance(data, np.ndarray):  # CIFAR: [N, H, W, C] uint8
            images = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()
        else:  # FashionMNIST: uint8 tensor [N, H, W]
            images = data.unsqueeze(1).contiguous()
        labels = torch.as_tensor(np.asarray(raw.targets), dtype=torch.int64)
        splits.append(Split("train" if train else "test", images, labels, spec.mean, spec.std))
    return LoadedDataset(spec, splits[0], splits[1], root=root)


# ---------------------------------------------------------------------------------------------
# Scenario and seeded subsets


def seeded_rng(seed: int, purpose: str) -> np.random.Generator:
    """A numpy generator for one purpose of one experiment seed.

    Different purposes (``"embedding"``, ``"mia"``, ...) get independent streams, so adding a
    new random choice never shifts the others.
    """
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode())])


def derive_seed(seed: int, purpose: str) -> int:
    """An integer seed for one purpose of one experiment seed (for torch generators)."""
    return int(seeded_rng(seed, purpose).integers(0, 2**62))


def balanced_subset(
    labels: np.ndarray, classes: list[int] | np.ndarray, total: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``total`` indices spread as evenly as possible over ``classes``, sorted.

    Each class gives ``total // len(classes)`` samples (the remainder goes to the first classes);
    a class with fewer samples gives all it has. Indices index ``labels``.
    """
    classes = list(classes)
    if not classes or total <= 0:
        return np.zeros(0, dtype=np.int64)
    base, extra = divmod(int(total), len(classes))
    chosen = []
    for position, cls in enumerate(classes):
        members = np.flatnonzero(labels == cls)
        take = min(members.size, base + (1 if position < extra else 0))
        if take:
            chosen.append(rng.choice(members, size=take, replace=False))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


@dataclass(frozen=True)
class Scenario:
    """A data set, a model architecture, the images to forget and the seeds of the references.

    - ``forget``: a forget set (:mod:`mucomp.forget_sets`: ``class:3``, ``classes:3,5``,
      ``random:10%``, ``random:100``, ``indices:FILE``); ``forget_class`` is the short form of
      ``class:K`` (an index or a class name), kept as a field so ``Scenario("digits", 3)`` works.
    - ``seed``: the **training seed**, which trains the Original and Retrained models.
    - ``data_seed``: draws a random forget set and the fixed subsets (embedding, CKA, MIA).
    - ``arch``: the architecture; None means the data set's default (:attr:`DatasetSpec.arch`).

    The unlearning seed is not part of the scenario: it belongs to each experiment. Indices are
    positions in the train or test split, sorted ascending.
    """

    dataset: str = "digits"
    forget_class: int | str | None = None
    seed: int = 0
    forget: str | ForgetSet | None = None
    data_seed: int = 0
    arch: str | None = None

    def __post_init__(self) -> None:
        spec = get_spec(self.dataset)
        if self.forget is None:
            forget = ForgetSet("class", (spec.class_index(0 if self.forget_class is None else self.forget_class),))
        else:
            forget = parse_forget(self.forget, spec)
            if self.forget_class is not None and (
                not forget.by_class or forget.classes != (spec.class_index(self.forget_class),)
            ):
                raise ValueError(f"forget_class {self.forget_class!r} contradicts forget set {forget.text!r}; give one")
        object.__setattr__(self, "forget", forget)
        object.__setattr__(self, "forget_class", forget.classes[0] if forget.kind == "class" else None)
        object.__setattr__(self, "seed", validate_seed(self.seed))
        object.__setattr__(self, "data_seed", validate_seed(self.data_seed))
        arch = spec.arch if self.arch is None else self.arch
        if arch not in spec.archs:
            raise ValueError(f"architecture {arch!r} is not available for {self.dataset}; choose one of {', '.join(spec.archs)}")
        object.__setattr__(self, "arch", arch)

    def __getstate__(self) -> dict:
        # Only the fields travel (to worker processes, Ray tasks): never the cached data set.
        return {name: getattr(self, name) for name in ("dataset", "forget_class", "seed", "forget", "data_seed", "arch")}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_config(cls, config: dict) -> Scenario:
        """The scenario of a stored (current-schema) config dict."""
        forget = config.get("forget")
        if isinstance(forget, str) and forget.startswith("indices:"):
            forget = index_set(config.get("forget_indices") or [])
        return cls(config["dataset"], None, config.get("train_seed", config.get("seed", 0)),
                   forget if forget is not None else f"class:{config.get('forget_class', 0)}",
                   config.get("data_seed", 0), config.get("arch"))

    def config_fields(self) -> dict:
        """The scenario's part of a stored config: ``dataset``, ``forget`` (text), ``forget_class``
        (class sets of one class, else None), ``train_seed``, ``data_seed``, ``arch`` and, for
        index sets, ``forget_indices``."""
        fields = {"dataset": self.dataset, "forget": self.forget.text, "forget_class": self.forget_class,
                  "train_seed": self.seed, "data_seed": self.data_seed, "arch": self.arch}
        if self.forget.kind == "indices":
            fields["forget_indices"] = list(self.forget.indices)
        return fields

    @property
    def spec(self) -> DatasetSpec:
        return DATASETS[self.dataset]

    @property
    def forget_set(self) -> ForgetSet:
        return self.forget  # type: ignore[return-value]  # always a ForgetSet after __post_init__

    @property
    def by_class(self) -> bool:
        """Whether the forget set is whole classes (class metrics) or images (random / indices)."""
        return self.forget_set.by_class

    @property
    def forget_classes(self) -> tuple[int, ...]:
        """The classes forgotten whole (class sets); empty for random and index sets."""
        return self.forget_set.classes

    @property
    def forget_class_name(self) -> str:
        """The forget set in words: a class name, several names, or the random / index set."""
        names = self.spec.class_names
        if self.by_class:
            return ", ".join(names[k] for k in self.forget_classes)
        return self.forget_set.describe(self.spec)

    @property
    def retain_classes(self) -> list[int]:
        return [k for k in range(self.spec.num_classes) if k not in self.forget_classes]

    @property
    def key(self) -> str:
        """A short stable text id, e.g. ``digits-c3-s0`` (``-d1`` for a data seed, the arch when
        not the default)."""
        arch = "" if self.arch == self.spec.arch else f"-{self.arch.replace('_', '')}"
        data = f"-d{self.data_seed}" if self.data_seed else ""
        return f"{self.dataset}{arch}-{self.forget_set.key}-s{self.seed}{data}"

    @cached_property
    def data(self) -> LoadedDataset:
        return load_dataset(self.dataset)

    # --- the four cuts ---------------------------------------------------------------------
    @cached_property
    def forget_indices(self) -> np.ndarray:
        """Train indices of the forget set (D_f)."""
        return self.forget_set.indices_in(self.data.train.labels_np, self.data_seed)

    @cached_property
    def forget_mask(self) -> np.ndarray:
        """bool ``[N_train]``: whether each training image is in the forget set."""
        mask = np.zeros(len(self.data.train), dtype=bool)
        mask[self.forget_indices] = True
        return mask

    @cached_property
    def retain_indices(self) -> np.ndarray:
        """Train indices of every other image (D_r)."""
        return np.flatnonzero(~self.forget_mask)

    @cached_property
    def test_forget_indices(self) -> np.ndarray:
        """Test indices of the forget classes; empty for random and index sets (no test analogue)."""
        return np.flatnonzero(np.isin(self.data.test.labels_np, self.forget_classes))

    @cached_property
    def test_retain_indices(self) -> np.ndarray:
        """Test indices of the retain classes (every test image for random and index sets)."""
        return np.flatnonzero(~np.isin(self.data.test.labels_np, self.forget_classes))

    # --- fixed seeded subsets ----------------------------------------------------------------
    @cached_property
    def embedding_indices(self) -> np.ndarray:
        """Train indices for the embedding view: up to ``embedding_per_class`` per class."""
        labels = self.data.train.labels_np
        per_class = self.spec.embedding_per_class
        classes = list(range(self.spec.num_classes))
        return balanced_subset(labels, classes, per_class * len(classes), seeded_rng(self.data_seed, "embedding"))

    @cached_property
    def cka_indices(self) -> dict[str, np.ndarray]:
        """The four CKA subsets: ``train_forget``, ``train_retain``, ``test_forget``, ``test_retain``.

        Forget subsets hold up to ``cka_forget_cap`` images (spread over the forget classes, or
        drawn from the forget images of a random / index set; ``test_forget`` is empty for those),
        retain subsets up to ``cka_retain_cap`` spread evenly over the retain classes.
        """
        spec = self.spec
        out = {}
        for split_name in ("train", "test"):
            labels = self.data.split(split_name).labels_np
            rng = seeded_rng(self.data_seed, f"cka-{split_name}")
            if self.by_class:
                out[f"{split_name}_forget"] = balanced_subset(labels, self.forget_classes, spec.cka_forget_cap, rng)
                out[f"{split_name}_retain"] = balanced_subset(labels, self.retain_classes, spec.cka_retain_cap, rng)
                continue
            if split_name == "train":
                forget = self.forget_indices
                take = min(forget.size, spec.cka_forget_cap)
                out["train_forget"] = np.sort(rng.choice(forget, size=take, replace=False)).astype(np.int64)
                pool = self.retain_indices
            else:
                out["test_forget"] = np.zeros(0, dtype=np.int64)
                pool = self.test_retain_indices
            chosen = balanced_subset(labels[pool], self.retain_classes, spec.cka_retain_cap, rng)
            out[f"{split_name}_retain"] = np.sort(pool[chosen]).astype(np.int64)
        return out

    def activation_indices(self, split_name: str) -> np.ndarray:
        """All indices of one split whose layer activations are kept (union of its CKA subsets)."""
        subsets = self.cka_indices
        return np.union1d(subsets[f"{split_name}_forget"], subsets[f"{split_name}_retain"])

    @cached_property
    def mia_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(members, non-members) for MIA-Efficacy: retain train and test-retain images.

        Equal counts, at most ``mia_cap`` each, drawn with the data seed.
        """
        rng = seeded_rng(self.data_seed, "mia")
        count = min(self.retain_indices.size, self.test_retain_indices.size, self.spec.mia_cap)
        members = np.sort(rng.choice(self.retain_indices, size=count, replace=False))
        non_members = np.sort(rng.choice(self.test_retain_indices, size=count, replace=False))
        return members.astype(np.int64), non_members.astype(np.int64)
