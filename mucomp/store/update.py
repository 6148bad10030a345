"""Adding audit figures to a stored experiment, atomically, without losing anything stored.

Experiments are otherwise immutable (:mod:`mucomp.store.core`). Audits that cost more than the
one evaluation pass (U-LiRA's shadow models, the relearning attack) run later, on demand, and are
stored with the experiment: :func:`update_audits` merges new blocks into ``result["audits"]`` and
new scalars into ``result["metrics"]`` and leaves every other byte's meaning as it was.

"Read the current result -> merge -> validate -> write a temporary file in the experiment's folder
-> ``os.replace`` onto ``result.json`` -> index row" runs under the store's thread-and-file lock,
so two audits finishing at once (two worker processes) both land, and a reader sees either the
old or the new file, never half of one. The weights are not touched. The result gets
``updated_at`` (UTC, ISO 8601), which pages use to tell an updated result from the one they cached.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mucomp.names import MAX_RESULT_BYTES, RESULT_FILE
from mucomp.store.errors import ExperimentNotFoundError, StoreError, UnreadableExperimentError

if TYPE_CHECKING:
    from mucomp.store.core import Experiment, ExperimentStore


def update_audits(
    store: ExperimentStore,
    experiment_id: str,
    audits: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
) -> Experiment:
    """Store ``audits`` (``{name: block}``, each replacing a block of that name) and ``metrics``
    (scalars, each replacing the metric of that name) with experiment ``experiment_id``.

    Raises :class:`ExperimentNotFoundError` when it is gone (e.g. deleted meanwhile),
    :class:`UnreadableExperimentError` when its result does not validate, and
    :class:`StoreError` when the merged result would not validate or is too large (then nothing
    was written).
    """
    from mucomp.metrics import to_json_safe
    from mucomp.store.core import Experiment, _fsync_dir, _write_synced, now_iso, unreadable_message, validate_result

    folder = store._folder(experiment_id)
    with store._locked():
        current, problem = store._read(experiment_id)
        if current is None:
            if problem is None:
                raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in {store.root} (deleted meanwhile?)")
            raise UnreadableExperimentError(unreadable_message(experiment_id, problem), problem)
        merged = dict(current)
        stored_audits = current.get("audits")
        merged["audits"] = {**(stored_audits if isinstance(stored_audits, Mapping) else {}), **audits}
        if metrics:
            merged["metrics"] = {**current["metrics"], **metrics}
        merged["updated_at"] = now_iso()
        merged = validate_result(to_json_safe(merged))
        payload = json.dumps(merged, allow_nan=False, indent=1).encode()
        if len(payload) > MAX_RESULT_BYTES:
            raise StoreError(f"{experiment_id}: the result with its audits would exceed "
                             f"{MAX_RESULT_BYTES // 1024**2} MB; nothing was written")
        tmp = folder / f".{RESULT_FILE}.{secrets.token_hex(3)}.tmp"
        try:
            _write_synced(tmp, payload)
            os.replace(tmp, folder / RESULT_FILE)  # atomic: readers see the old or the new file
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        store._index.put(experiment_id, merged)
    _fsync_dir(folder)
    return Experiment(experiment_id, merged, folder)
