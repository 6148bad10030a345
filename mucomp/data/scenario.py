"""A scenario on its loaded data: the forget / retain / test-forget / test-retain cuts and the
fixed, seeded subsets that embeddings, CKA and the membership-inference attack read.

:class:`Scenario` is a :class:`~mucomp.config.ScenarioDefinition` (data set, forget set, seeds,
architecture) that loads its data set on first use. Naming a scenario loads nothing; the cuts
are computed from the label arrays the first time they are asked for.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mucomp.config import ScenarioDefinition
from mucomp.data.loading import load_dataset
from mucomp.data.split import LoadedDataset


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
class Scenario(ScenarioDefinition):
    """A :class:`~mucomp.config.ScenarioDefinition` with the cuts of its loaded data.

    ``Scenario(dataset, forget_class, train_seed, forget, data_seed, arch)``; indices are positions
    in the train or test split, sorted ascending. Equal scenarios have equal fields; the loaded
    data and the cuts are cached on the instance and never travel (pickling keeps the fields).
    """

    @classmethod
    def of(cls, scenario: ScenarioDefinition) -> Scenario:
        """``scenario`` itself when it is a :class:`Scenario`, else one with the same fields."""
        if isinstance(scenario, Scenario):
            return scenario
        return cls(scenario.dataset, None, scenario.train_seed, scenario.forget, scenario.data_seed, scenario.arch)

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

    @cached_property
    def forget_sha256(self) -> str:
        """sha256 of the forget indices (int64, little endian, sorted): whether two machines drew
        the same images for a random set."""
        return hashlib.sha256(np.asarray(self.forget_indices, dtype="<i8").tobytes()).hexdigest()
