"""Which on-demand audits can run for a stored experiment (torch-free: the Attack page asks this
on every visit).

- U-LiRA re-makes a model per training seed: an unlearned experiment started from the Original
  (its method and hyper-parameters are redone), the Original (no unlearning) and the Retrained
  reference; on an architecture whose references train locally in minutes
  (:data:`CHEAP_SHADOW_ARCHS`), unless the caller accepts the cost. Uploaded and published models
  have no recipe to redo.
- Relearning: every model (the Retrained model of the scenario is the baseline).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

AUDITS = ("ulira", "relearn")
#: Architectures whose references train locally in minutes on a CPU, so U-LiRA's shadows
#: (2 x (K + M) reference models) are affordable.
CHEAP_SHADOW_ARCHS = ("digits_cnn", "vit_digits", "fmnist_cnn")


class AuditError(ValueError):
    """An audit that can't run for this experiment; the message says why and what to do."""


def normalise_audits(audits: Iterable[str] | str | None) -> tuple[str, ...]:
    """The requested audits in :data:`AUDITS` order; ValueError for an unknown name."""
    wanted = set(AUDITS if audits is None else ([audits] if isinstance(audits, str) else audits))
    unknown = sorted(wanted - set(AUDITS))
    if unknown or not wanted:
        raise ValueError(f"unknown audit(s) {unknown}; choose from {', '.join(AUDITS)}")
    return tuple(a for a in AUDITS if a in wanted)


def shadow_mode(result: Mapping[str, Any], *, allow_costly: bool = False) -> str:
    """How U-LiRA's shadows of a stored result are made: ``"method"``, ``"original"`` or
    ``"retrained"``; :class:`AuditError` saying why when it has none."""
    from mucomp.specs import DATASETS

    kind = result.get("kind")
    config = result.get("config") or {}
    dataset = config.get("dataset")
    arch = config.get("arch") or (DATASETS[dataset].arch if dataset in DATASETS else None)
    if arch not in CHEAP_SHADOW_ARCHS and not allow_costly:
        raise AuditError(
            f"U-LiRA trains 2 x (K + M) reference models locally; with {arch} each is a full training run "
            f"(hours on a GPU), so mucomp runs it on {', '.join(CHEAP_SHADOW_ARCHS)} only. From Python, pass "
            "allow_costly=True to mucomp.experiment.audits.run_audits to run it anyway")
    if kind in ("original", "retrained"):
        return str(kind)
    if kind != "unlearned":
        raise AuditError(f"U-LiRA re-makes a model with its method for other training seeds; a {kind} model has no "
                         "method to re-run. Run the relearning attack on it instead")
    if (config.get("base") or "original") != "original":
        raise AuditError(f"U-LiRA re-makes the model from the Original with other training seeds; this experiment "
                         f"started from {config.get('base')}. Audit the experiment it started from, or re-run the "
                         "method from the Original")
    return "method"


def ulira_problem(result: Mapping[str, Any]) -> str | None:
    """Why U-LiRA can't run for this stored result (None when it can)."""
    try:
        shadow_mode(result)
    except AuditError as err:
        return str(err)
    return None
