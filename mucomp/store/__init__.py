"""The experiment store (see :mod:`mucomp.store.core`): folders of results and weights, their
listing index (:mod:`mucomp.store.index`) and the checks of an import (:mod:`mucomp.store.archive`).

Every public name lives on here, so ``from mucomp.store import ExperimentStore, StoreError`` works
as it always did.
"""

import os  # noqa: F401  (tests patch mucomp.store.os.rename, the call that makes a save atomic)

from mucomp.names import (
    ID_PATTERN,
    KINDS,
    MANIFEST_FILE,
    MAX_IMPORT_BYTES,
    MAX_RESULT_BYTES,
    MODEL_FILE,
    PROTECTED_KINDS,
    RESULT_FILE,
    SCENARIO_KEYS,
    SCHEMA_VERSION,
)
from mucomp.store.archive import weights_problem
from mucomp.store.core import (
    REQUIRED_KEYS,
    Experiment,
    ExperimentStore,
    deletion_refusal,
    now_iso,
    unreadable_message,
    validate_id,
    validate_result,
)
from mucomp.store.errors import (
    ExperimentExistsError,
    ExperimentNotFoundError,
    InvalidIdError,
    StoreError,
    UnreadableExperimentError,
)
from mucomp.store.index import HEAVY_BLOCKS
from mucomp.weights import weights_sha256

__all__ = [
    "HEAVY_BLOCKS", "ID_PATTERN", "KINDS", "MANIFEST_FILE", "MAX_IMPORT_BYTES", "MAX_RESULT_BYTES", "MODEL_FILE",
    "PROTECTED_KINDS", "REQUIRED_KEYS", "RESULT_FILE", "SCENARIO_KEYS", "SCHEMA_VERSION", "Experiment", "ExperimentExistsError",
    "ExperimentNotFoundError", "ExperimentStore", "InvalidIdError", "StoreError",
    "UnreadableExperimentError", "deletion_refusal", "now_iso", "unreadable_message", "validate_id", "validate_result",
    "weights_problem", "weights_sha256",
]
