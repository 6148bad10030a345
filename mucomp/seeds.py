"""The one definition of a valid experiment seed (torch-free, so :mod:`mucomp.embedding` can use it).

Seeds reach numpy generators and UMAP's ``random_state``, which take 32-bit seeds, so every seed
is an integer in ``[0, 2**32)``; :mod:`mucomp.data` re-exports both names.
"""

from __future__ import annotations

import numpy as np

#: Seeds are integers in ``[0, MAX_SEED)``.
MAX_SEED = 2**32


def validate_seed(seed: object) -> int:
    """``seed`` as a Python int; ValueError unless it is an integer (not a bool) in ``[0, 2**32)``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not 0 <= int(seed) < MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**32), got {seed!r}")
    return int(seed)
