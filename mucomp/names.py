"""Names every stored result and archive shares, importable without pydantic or torch (so that
``mucomp list`` starts quickly): file names, the id pattern, kinds and the schema version."""

from __future__ import annotations

import re

#: The version of the stored-result schema this mucomp writes (readers for older ones: mucomp.schema).
SCHEMA_VERSION = 4
#: An experiment id, matched with ``fullmatch`` (``$`` would also match before a trailing newline).
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
#: ``comparator``: imported from the published comparator's experiment files (mucomp.sharing.comparator).
KINDS = ("original", "retrained", "unlearned", "custom", "published", "comparator")
PROTECTED_KINDS = ("original", "retrained")
#: The config keys that name a scenario (data set, forget set, training and data seeds, arch):
#: a listing filtered on them shows one scenario's experiments.
SCENARIO_KEYS = ("dataset", "forget", "train_seed", "data_seed", "arch")
RESULT_FILE = "result.json"
MODEL_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
MAX_IMPORT_BYTES = 2 * 1024**3  # uncompressed archive content
#: Largest ``result.json`` read, imported or written, checked before it is parsed (parsing costs
#: about 18 times the file's size in memory). A result grows with its forget set: about 330 bytes
#: per forget image (attack values and probabilities) plus 160 with U-LiRA stored, and ~0.5 MB of
#: embedding: a Fashion-MNIST class is 1.5 MB, the largest forget set (nine of its ten classes,
#: 54,000 images) with U-LiRA about 26 MB.
MAX_RESULT_BYTES = 32 * 1024**2
#: Largest ``manifest.json`` of an archive (a bundle's: a few kB per experiment).
MAX_MANIFEST_BYTES = 64 * 1024**2
