"""The one definition of a valid experiment seed (torch-free, so :mod:`mucomp.embedding` can use it).

Seeds reach numpy generators and UMAP's ``random_state``, which take 32-bit seeds, so every seed
is an integer in ``[0, 2**32)``; :mod:`mucomp.data` re-exports both names.
"""

from __future__ import annotations

import re

import numpy as np

#: Seeds are integers in ``[0, MAX_SEED)``.
MAX_SEED = 2**32
#: A seed as text: the ASCII digits 0-9 only. ``int()`` also reads ``1_0`` (as 10), ``١`` and
#: other Unicode digits, which the forget-set texts refuse; seeds follow the same rule.
_SEED_TEXT = re.compile(r"[0-9]+")


def validate_seed(seed: object) -> int:
    """``seed`` as a Python int; ValueError unless it is an integer (not a bool) in ``[0, 2**32)``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not 0 <= int(seed) < MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**32), got {seed!r}")
    return int(seed)


def seed_from_text(text: str) -> int:
    """The seed written in ``text`` (surrounding spaces ignored); ValueError saying what to write
    unless it is a whole number written with the digits 0-9, in ``[0, 2**32)``."""
    value = str(text).strip()
    if not _SEED_TEXT.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a whole number written with the digits 0-9")
    if len(value.lstrip("0")) > len(str(MAX_SEED)):  # past any seed: never hand int() thousands of digits
        raise ValueError(f"seed must be in [0, 2**32), got {value[:40]}{'...' if len(value) > 40 else ''}")
    return validate_seed(int(value))


def parse_seeds(text: str, *, limit: int = 1000) -> list[int]:
    """Seeds from text such as ``0-4``, ``0,3,7`` or ``0-2,10`` (ranges inclusive), in the order
    given, without repeats. ValueError saying what to write for anything else, for a descending
    range, or for more than ``limit`` seeds."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first or (dash and not last):
            raise ValueError(f"{part!r} is not a seed or a range of seeds; write e.g. 0-4 or 0,3,7")
        try:
            low = seed_from_text(first)
            high = seed_from_text(last) if dash else low
        except ValueError as err:
            raise ValueError(f"{part!r} is not a seed or a range of seeds: {err}; write e.g. 0-4 or 0,3,7") from None
        if high < low:
            raise ValueError(f"the range {part!r} runs backwards; write the smaller seed first, e.g. {high}-{low}")
        if high - low + 1 > limit:
            raise ValueError(f"{part!r} names more than {limit} seeds")
        for seed in range(low, high + 1):
            if seed not in seeds:
                seeds.append(seed)
    if not seeds:
        raise ValueError("no seed given; write e.g. 0-4 or 0,3,7")
    if len(seeds) > limit:
        raise ValueError(f"more than {limit} seeds given")
    return seeds
