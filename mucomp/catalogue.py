"""The metric catalogue: every number mucomp shows, described once (torch-free).

Each :class:`Metric` says where the number is stored (``key`` in a result's ``metrics``), how the
Screen table heads it (``column``), which colour group it belongs to, which direction is better,
whether it is a fraction in [0, 1], and one plain sentence for its tooltip. The tables, the colour
scales, the CLI's listings, the replicate summaries, the Hub card and a job's summary line all
read their columns from here; the full definitions are in ``docs/definitions.md``.

For forget sets of images (``random:`` and ``indices:``), forgetting is read as "close to the
Retrained model" (the SalUn convention, the gap to Retrain): a model that never saw those images
still classifies most of them correctly, so a low UA is not better there. :func:`direction` gives
the direction of a column for a forget-set kind: ``"higher"``, ``"lower"`` or ``"retrained"``
(closest to the Retrained model's value is best).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mucomp.forget_sets import kind_of

#: The directions a column may have.
DIRECTIONS = ("higher", "lower", "retrained")
#: Forget-set kinds whose sets are images rather than whole classes.
IMAGEWISE_KINDS = ("random", "indices")


#: What the U-LiRA accuracy belongs to, said wherever it is shown (Screen's column, Attack's tab).
ULIRA_SCOPE = (
    "The accuracy is a property of the method's configuration (method, hyper-parameters and scenario), not of "
    "one experiment: it is measured on shadow models that redo that configuration from Originals of other "
    "training seeds, so every experiment of the configuration shows the same value (its own images' LRs differ)."
)


@dataclass(frozen=True)
class Metric:
    """One number of a stored result.

    ``key``: its key in ``result["metrics"]``; ``column``: the Screen table's heading; ``label``:
    words for axes and legends; ``group``: ``"accuracy"``, ``"efficiency"``, ``"privacy"`` or
    ``"audit"``; ``direction``: which way is better for class forget sets (``"higher"`` /
    ``"lower"``); ``imagewise``: the direction for image forget sets when it differs
    (``"retrained"``); ``fraction``: a share in [0, 1] (shown as a percentage); ``help``: the
    tooltip sentence.
    """

    key: str
    column: str
    label: str
    group: str
    direction: str
    help: str
    fraction: bool = True
    imagewise: str | None = None


METRICS: tuple[Metric, ...] = (
    Metric("UA", "UA", "UA (forget accuracy)", "accuracy", "lower",
           "Unlearning accuracy: share of the forget images the model still gets right (lower is better for "
           "forgotten classes; for forgotten images, closest to the Retrained model).", imagewise="retrained"),
    Metric("RA", "RA", "RA (retain accuracy)", "accuracy", "higher",
           "Remaining accuracy: training accuracy on the retained images, per class then averaged (higher is better)."),
    Metric("TUA", "TUA", "TUA (test forget accuracy)", "accuracy", "lower",
           "Test unlearning accuracy: share of the forget classes' test images still recognised (lower is better; "
           "none for image forget sets).", imagewise="retrained"),
    Metric("TRA", "TRA", "TRA (test retain accuracy)", "accuracy", "higher",
           "Test remaining accuracy: test accuracy on the retained classes, or on every test image when images "
           "are forgotten (higher is better)."),
    Metric("RT", "RT", "RT (s)", "efficiency", "lower",
           "Run time: seconds the unlearning itself took, measured in the process that ran it, without "
           "evaluation (lower is better).", fraction=False),
    Metric("PS", "PS", "Privacy score", "privacy", "higher",
           "Privacy score, 51-point threshold grid (published): 1 = no threshold attack tells the model from "
           "retraining (higher is better). PS_exact (in Details) tries every value: PS_exact ≤ PS."),
    Metric("MIA_efficacy", "MIA", "MIA-Efficacy", "privacy", "higher",
           "MIA-Efficacy: share of forget images a membership attack calls 'not trained on' (higher is better "
           "for forgotten classes; for forgotten images, closest to the Retrained model).", imagewise="retrained"),
    Metric("avg_gap", "Avg. Gap", "Average gap to Retrained", "privacy", "lower",
           "Average distance to the Retrained model over forget accuracy, RA, TRA and MIA-Efficacy "
           "(lower is better; 0 = behaves like retraining)."),
    Metric("ulira_acc", "U-LiRA", "U-LiRA accuracy", "audit", "lower",
           "Per-example attack accuracy, 0.5 = no image tells the method from retraining (lower is better). "
           "One value per method configuration (its shadows), not per run. Run it on Attack."),
    Metric("relearn_steps", "Relearn", "Relearning steps (× Retrained)", "audit", "higher",
           "Steps to relearn half the Original's forget accuracy, relative to the Retrained model (higher is "
           "better; 1 = like retraining). Run it on Attack.", fraction=False),
    Metric("leakage_js", "Leak JS", "Class leakage (JS)", "audit", "lower",
           "Mean Jensen-Shannon divergence of the forget images' predictions from the Retrained model's (lower "
           "is better; 0 = the same).", fraction=False),
)
#: The many-model (ensemble) metrics of the NeurIPS 2023 unlearning challenge and EasyDUB: one value
#: per method configuration, stored in its ensemble record (:mod:`mucomp.store.ensembles`), not in
#: a result's ``metrics``; Screen adds their columns (:mod:`mucomp.results.ensembles`). Coloured
#: with the privacy columns.
ENSEMBLE_METRICS: tuple[Metric, ...] = (
    Metric("forget_quality", "F", "Forgetting quality F", "privacy", "higher",
           "Forgetting quality F (NeurIPS 2023 challenge): per forget image, how well N unlearned models' "
           "confidences are told from N retrained ones' (higher is better; 1 = like retraining)."),
    Metric("score", "Score", "Challenge score", "privacy", "higher",
           "The challenge's final score: F × the retain and test accuracy ratios of the unlearned to the retrained "
           "models (higher is better)."),
    Metric("klom_p95", "KLoM", "KLoM P95 (forget)", "privacy", "lower",
           "KLoM (EasyDUB), forget images, 95th percentile: KL divergence between the unlearned and the retrained "
           "models' margins per image (lower is better; 0 = the same).", fraction=False),
)
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
BY_COLUMN: dict[str, Metric] = {m.column: m for m in (*METRICS, *ENSEMBLE_METRICS)}

#: Screen column -> stored metric key.
METRIC_KEYS: dict[str, str] = {m.column: m.key for m in METRICS}
#: Screen column -> direction for class forget sets.
METRIC_DIRECTIONS: dict[str, str] = {**{m.column: m.direction for m in (*METRICS, *ENSEMBLE_METRICS)},
                                     "UA (SalUn)": "higher"}
#: Columns that are fractions in [0, 1] (coloured on the fixed scale [0, 1]; shown as percentages
#: except the ensemble scores, which read as the challenge writes them, 0.062).
FRACTION_COLUMNS: tuple[str, ...] = tuple(m.column for m in (*METRICS, *ENSEMBLE_METRICS)
                                          if m.fraction and m.group != "audit")
#: The ensemble metrics' Screen columns (F, Score, KLoM).
ENSEMBLE_COLUMNS: tuple[str, ...] = tuple(m.column for m in ENSEMBLE_METRICS)
#: The colour-scale groups of the table: columns and a base colour (darker cell = better value).
COLOR_GROUPS: dict[str, tuple[tuple[str, ...], str]] = {
    "accuracy": (tuple(m.column for m in METRICS if m.group == "accuracy"), "#2563eb"),
    "efficiency": (tuple(m.column for m in METRICS if m.group == "efficiency"), "#ea580c"),
    "privacy": (tuple(m.column for m in (*METRICS, *ENSEMBLE_METRICS) if m.group == "privacy"), "#16a34a"),
}
#: The audit columns (U-LiRA accuracy, relearn steps, class leakage).
AUDIT_COLUMNS: tuple[str, ...] = tuple(m.column for m in METRICS if m.group == "audit")

#: Metrics a listing, a summary, a job's line or a card shows, in this order (stored keys).
LIST_METRICS = ("UA", "RA", "TUA", "TRA", "RT", "PS", "PS_exact", "MIA_efficacy", "avg_gap")
#: Metrics summarised per replicate group (when present).
SUMMARY_METRICS = (*LIST_METRICS, "leakage_js")
#: Metrics in a finished job's summary line (``cost`` too: the counts).
JOB_SUMMARY_KEYS = (*LIST_METRICS, "cost")
#: The short form of the four accuracies (references' lines).
ACCURACY_KEYS = ("UA", "RA", "TUA", "TRA")
#: Whether a higher value of a summarised metric is the better unlearning (for ranks).
HIGHER_IS_BETTER: dict[str, bool] = {
    **{m.key: m.direction == "higher" for m in METRICS}, "PS_exact": True,
}

#: The built-in unlearning methods and their labels, in the order the app lists them (each
#: registers itself in :mod:`mucomp.methods`; they are here so a page can tell a built-in from a
#: plugin, and name it, without importing the methods). A built-in's label is this one, never the
#: free text a stored result carries (:func:`mucomp.results.access.method_label`).
BUILTIN_METHOD_LABELS: dict[str, str] = {
    "ft": "Fine-tuning (FT)",
    "ga": "Gradient ascent (GA)",
    "rl": "Random labels (RL)",
    "scrub": "SCRUB",
    "salun": "Saliency unlearning (SalUn)",
    "salun_comparator": "SalUn, comparator's variant",
    "neggrad_plus": "NegGrad+",
    "l1_sparse": "l1-sparse",
    "ssd": "Selective synaptic dampening (SSD)",
    "bad_teacher": "Bad Teacher",
    "unsir": "UNSIR (impair-repair)",
    "retrain": "Retrain",
}
BUILTIN_METHODS = tuple(BUILTIN_METHOD_LABELS)

#: Labels of a result's ``kind``.
TYPE_LABELS: dict[str, str] = {
    "original": "Original",
    "retrained": "Retrained",
    "unlearned": "Unlearned",
    "custom": "Custom",
    "published": "Published",
    "comparator": "Published (comparator)",
}

#: One plain-words sentence per Screen column (metrics and the others).
COLUMN_HELP: dict[str, str] = {
    "ID": "The experiment's short id; the same id names its stored results and weights.",
    "Type": "Original: trained on all data; Retrained: without the forget set (the gold standard); "
            "Unlearned: by a method; Custom: uploaded; Published: a published model, or the comparator's files.",
    "Base": "The model the unlearning method started from (the Original or an earlier experiment).",
    "Method": "The unlearning method that produced the model.",
    "Epochs": "How many passes over the data the unlearning method made.",
    "Batch": "How many images the method used per update step.",
    "Seeds": "t = training seed of the references, u = unlearning seed of the run. Two rows of one group "
             "with the same seeds are one replicate run twice: it counts once.",
    "LR": "Learning rate: how large each update step of the method was.",
    "Cost": "Hardware-independent cost of the unlearning: samples back-propagated (forwarded samples and "
            "optimiser steps in the details). RT varies on shared machines; these counts do not.",
    "Created": "When the experiment was stored (UTC).",
    "Owner": "The browser session that made the experiment; only it can delete the experiment.",
    "UA (SalUn)": "The literature's unlearning accuracy, 1 - forget accuracy (higher is better for class "
                  "forget sets).",
    **{m.column: m.help for m in (*METRICS, *ENSEMBLE_METRICS)},
}

#: Where every definition is written, with how mucomp differs from the published systems.
DEFINITIONS_PATH = "docs/definitions.md"
DEFINITIONS_POINTER = f"Definitions: {DEFINITIONS_PATH} in the repository."


def imagewise(forget: str | None) -> bool:
    """Whether a canonical forget-set text (``random:10%``, ``indices:<hash>``) names images rather
    than whole classes (``class:3``, ``classes:3,5``)."""
    try:
        return kind_of(forget) in IMAGEWISE_KINDS
    except ValueError:
        return False


def direction(column: str, forget: str | None = None) -> str | None:
    """The direction of ``column`` for the forget set ``forget`` (its canonical text; None: a
    class set): ``"higher"``, ``"lower"``, ``"retrained"`` (closest to the Retrained model's
    value is best) or None for a column without one."""
    metric = BY_COLUMN.get(column)
    if metric is not None and imagewise(forget) and metric.imagewise is not None:
        return metric.imagewise
    return METRIC_DIRECTIONS.get(column)


def direction_words(column: str, forget: str | None = None) -> str:
    """``"lower is better"``, ``"higher is better"`` or ``"closer to the Retrained model is
    better"`` for an axis title or a caption."""
    return {"higher": "higher is better", "lower": "lower is better",
            "retrained": "closer to the Retrained model is better"}.get(direction(column, forget) or "", "")


def metric_values(metrics: Mapping[str, object] | None, keys: tuple[str, ...] = LIST_METRICS) -> dict:
    """``{key: metrics[key]}`` for the listed ``keys`` present (None where absent)."""
    metrics = metrics or {}
    return {key: metrics.get(key) for key in keys}


def method_label(result: Mapping) -> str:
    """A stored result's method label: a built-in's own (the stored ``method_label`` is free text
    that a bundle can set to another method's), else the stored label, else the method's or the
    kind's name."""
    kind = result.get("kind")
    config = result.get("config")
    method = config.get("method") if isinstance(config, Mapping) else None
    label = result.get("method_label")
    if label:
        return BUILTIN_METHOD_LABELS[method] if kind == "unlearned" and method in BUILTIN_METHOD_LABELS else str(label)
    if kind in ("original", "retrained"):
        return TYPE_LABELS[kind]
    return str(method or kind or "?")
