"""Sharing and reproducing experiments (no UI code here).

- :mod:`mucomp.sharing.bundle`: reproducibility bundles (``mucomp export --bundle``): configs with
  every seed, scenario and data hashes, the references' identities, code, environment, metrics
  and optionally the weights, in an archive ``mucomp import`` also reads; :func:`read_bundle`
  checks one completely.
- :mod:`mucomp.sharing.reproduce`: ``mucomp reproduce``: rerun every experiment of a bundle here
  and diff every metric (exact on the same CPU and versions, else within a tolerance).
- :mod:`mucomp.sharing.hub`: ``mucomp push`` / ``mucomp pull``: a Hugging Face dataset repo with
  one folder per experiment and a generated dataset card (:mod:`mucomp.sharing.card`).
- :mod:`mucomp.sharing.comparator`: ``mucomp import`` of the published comparator's experiment
  files (format checked by :mod:`mucomp.sharing.comparator_schema`), stored without weights.
- :mod:`mucomp.environment`: the code, environment and data identities they record.

Importing this package imports neither torch nor huggingface_hub; each function imports what it
needs when called (``mucomp list`` and the other light commands stay fast).
"""

from mucomp.sharing.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    EXPERIMENT_MANIFEST_FILE,
    Bundle,
    BundleEntry,
    bundle_bytes,
    bundle_members,
    bundle_problem,
    group_members,
    read_bundle,
    write_bundle,
)

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_VERSION", "EXPERIMENT_MANIFEST_FILE", "Bundle", "BundleEntry", "bundle_bytes",
    "bundle_members", "bundle_problem", "group_members", "read_bundle", "write_bundle",
]
