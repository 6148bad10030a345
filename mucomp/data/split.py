"""A data set in memory: its splits as uint8 image arrays and int64 labels.

A split keeps numpy arrays (``images_np`` ``[N, C, H, W]`` uint8, ``labels_np`` ``[N]`` int64) and
hands torch the same memory (``images`` / ``labels``, made on first use), so reading a split's
labels or showing its images never imports torch, and a method that writes into the tensors is
seen in the arrays (:mod:`mucomp.methods.guard` checks them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mucomp.specs import DatasetSpec

if TYPE_CHECKING:
    import torch


class Split:
    """One split of a data set: images uint8 ``[N, C, H, W]`` and labels int64 ``[N]``.

    ``images`` / ``labels`` may be numpy arrays or CPU tensors; ``mean`` and ``std`` are per
    channel, for images scaled to [0, 1].
    """

    def __init__(self, name: str, images: Any, labels: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        images_np = np.asarray(images)
        labels_np = np.asarray(labels)
        if images_np.dtype != np.uint8 or images_np.ndim != 4:
            raise ValueError("Split.images must be uint8 of shape [N, C, H, W]")
        if labels_np.shape != (images_np.shape[0],):
            raise ValueError("Split.labels must have one label per image")
        self.name = name
        self.images_np = np.ascontiguousarray(images_np)
        self.labels_np = labels_np.astype(np.int64)
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return int(self.labels_np.shape[0])

    def __repr__(self) -> str:
        return f"Split({self.name!r}, {len(self)} images of {tuple(self.images_np.shape[1:])})"

    @cached_property
    def images(self) -> torch.Tensor:
        """The images as a uint8 tensor ``[N, C, H, W]`` sharing the array's memory."""
        import torch

        if not self.images_np.flags.writeable:
            self.images_np = self.images_np.copy()
        return torch.from_numpy(self.images_np)

    @cached_property
    def labels(self) -> torch.Tensor:
        """The labels as an int64 tensor ``[N]`` sharing the array's memory."""
        import torch

        if not self.labels_np.flags.writeable:
            self.labels_np = self.labels_np.copy()
        return torch.from_numpy(self.labels_np)

    @cached_property
    def _scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return mean, std

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 ``[n, C, H, W]`` -> float32 ``[n, C, H, W]``: scaled to [0, 1], then standardised."""
        mean, std = self._scale
        return (images_uint8.float().div_(255.0) - mean) / std

    def batch(self, indices: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``[n, C, H, W]`` float32 and labels ``[n]`` for dataset indices."""
        index = _as_index(indices)
        return self.normalize(self.images[index]), self.labels[index]

    def display_images(self, indices: np.ndarray) -> np.ndarray:
        """Images for display: uint8 ``[n, H, W, C]`` (C = 1 or 3), unnormalised (numpy only)."""
        index = np.asarray(indices, dtype=np.int64)
        return np.ascontiguousarray(self.images_np[index].transpose(0, 2, 3, 1))


def _as_index(indices: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Dataset indices ``[n]`` as an int64 tensor for indexing.

    A read-only array (a cached, frozen split index) is copied: torch cannot wrap it without warning.
    """
    import torch

    if isinstance(indices, torch.Tensor):
        return indices.to(torch.int64)
    array = np.asarray(indices, dtype=np.int64)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


@dataclass
class LoadedDataset:
    """A data set in memory: its spec and its ``train`` and ``test`` splits (``root``: the folder
    its files were read from, None for a bundled data set; ``where``: that place in words)."""

    spec: DatasetSpec
    train: Split
    test: Split
    root: Path | None = None
    where: str = ""

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
