"""Data sets, scenarios and the fixed subsets every view reads.

- :mod:`mucomp.data.loading`: :func:`load_dataset` (digits bundled with scikit-learn; Fashion-MNIST
  and CIFAR-10 from disk or a download), cached per process, and :func:`data_sha256`.
- :mod:`mucomp.data.split`: :class:`Split` and :class:`LoadedDataset`, the splits in memory.
- :mod:`mucomp.data.scenario`: :class:`Scenario`, a scenario's cuts and fixed subsets.

Importing this package does not import torch: a page that names a scenario never loads it.
"""

from mucomp.data.loading import (
    DatasetUnavailableError,
    clear_dataset_cache,
    data_sha256,
    load_dataset,
)
from mucomp.data.scenario import Scenario, balanced_subset, derive_seed, seeded_rng
from mucomp.data.split import LoadedDataset, Split
from mucomp.seeds import MAX_SEED, validate_seed
from mucomp.specs import CIFAR10_CLASSES, DATASETS, FASHION_CLASSES, DatasetSpec, get_spec

__all__ = [
    "CIFAR10_CLASSES", "DATASETS", "FASHION_CLASSES", "MAX_SEED", "DatasetSpec", "DatasetUnavailableError",
    "LoadedDataset", "Scenario", "Split", "balanced_subset", "clear_dataset_cache", "data_sha256", "derive_seed",
    "get_spec", "load_dataset", "seeded_rng", "validate_seed",
]
