"""What the pages need to know about experiments imported without weights: the published
comparator's (kind ``"comparator"``, :mod:`mucomp.sharing.comparator`). Torch-free.

- Their attack values cover the comparator's 200 forget images of its embedding subset, measured
  against the comparator's Retrained file of the same class; the Attack page pairs each such
  experiment with that Retrained experiment (:func:`attack_reference_id`), and mucomp's own
  experiments with the scenario's Retrained reference.
- They have no weights: audits that re-run the model say so (:func:`without_weights`).
- The figures the comparator does not compute (class leakage, probes) say where they went
  (:func:`missing_figure_note`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mucomp import catalogue
from mucomp.results.access import MissingBlockError, as_result, describe

#: The stored kind of an imported comparator experiment.
COMPARATOR_KIND = "comparator"


def is_comparator(result: Mapping[str, Any]) -> bool:
    """Whether a stored result (or listing row) was imported from the published comparator."""
    return result.get("kind") == COMPARATOR_KIND


def is_comparator_retrained(result: Mapping[str, Any]) -> bool:
    """Whether a stored result is the comparator's Retrained model (what its imports are attacked against)."""
    return is_comparator(result) and (result.get("config") or {}).get("comparator_type") == "Retrained"


def _comparator_retrained(listing: Iterable[Mapping[str, Any]]) -> list[str]:
    return [r["id"] for r in listing if is_comparator_retrained(r)]


def attack_reference_ready(listing: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``listing`` (one scenario's) holds a model some experiment can be attacked against:
    the Retrained reference, or a comparator Retrained experiment."""
    return any(r.get("kind") == "retrained" for r in listing) or bool(_comparator_retrained(listing))


def attack_reference_id(result: Mapping[str, Any], listing: Sequence[Mapping[str, Any]]) -> str:
    """The id of the Retrained model ``result``'s attack values are compared with.

    mucomp's own experiments: the scenario's Retrained reference (all forget images). A comparator
    experiment: the comparator Retrained experiment it was imported against (its
    ``comparator.retrained_id``) when listed, else any comparator Retrained of the scenario (the
    same 200 images). :class:`MissingBlockError` says what to import or prepare when there is none.
    """
    stored = as_result(result)
    if is_comparator(stored):
        candidates = _comparator_retrained(listing)
        wanted = (stored.get("comparator") or {}).get("retrained_id")
        if wanted in candidates:
            return str(wanted)
        if candidates:
            return candidates[0]
        forget_class = stored["config"].get("forget_class")
        raise MissingBlockError(
            f"{describe(stored)} was imported from the published comparator: its attack values are compared with the "
            f"comparator's Retrained model of the same images, which is not stored. Import its Retrained file too "
            f"(`mucomp import` of a00{forget_class}.json, or of the whole folder)."
        )
    for row in listing:
        if row.get("kind") == "retrained":
            return str(row["id"])
    raise MissingBlockError("The Retrained reference model of this scenario is not ready: prepare the reference "
                            "models on Home.")


def without_weights(result: Mapping[str, Any]) -> str | None:
    """Why a model can't be re-run (an audit, relearning, a bundle): it was imported without weights;
    None for every model that has them."""
    if is_comparator(result):
        return (f"This model is a {catalogue.TYPE_LABELS[COMPARATOR_KIND]} experiment, imported from the comparator's "
                "result file without weights: what needs the model itself (this audit, relearning, a reproducibility "
                "bundle) can't run on it. Its stored figures are all shown.")
    return None


def missing_figure_note(results: Iterable[Mapping[str, Any]], figure: str) -> str:
    """The message for a figure none of ``results`` holds (``figure``: e.g. ``"class leakage"``)."""
    if any(is_comparator(r) for r in results):
        return (f"The published comparator computes no {figure}, and its imported experiments carry no weights to "
                f"compute {figure} from here; models made in mucomp show them.")
    return f"These results were stored before mucomp computed {figure}; run them again to see {figure}."


def comparator_note(listing: Iterable[Mapping[str, Any]]) -> str | None:
    """A caption for Screen when the scenario holds imported comparator experiments, else None."""
    count = sum(is_comparator(r) for r in listing)
    if not count:
        return None
    return (f"{count} row(s) of type {catalogue.TYPE_LABELS[COMPARATOR_KIND]} were imported from the published "
            "comparator's result files (`mucomp import`): no weights; their PS is mucomp's on the comparator's 200 "
            "attacked forget images, beside the comparator's own published score (in Details); MIA-Efficacy and "
            "Avg. Gap are not available. See docs/definitions.md.")
