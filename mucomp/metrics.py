"""Accuracy metrics and prediction matrices, as docs/definitions.md defines them.

All accuracies are fractions in [0, 1] (top-1, eval mode), computed from an
:class:`~mucomp.evaluation.Evaluation`; nothing here runs a model.

Empty classes. A class with no samples in an evaluation has no accuracy: its per-class accuracy
is NaN (``null`` in JSON) and its prediction-matrix rows are NaN. RA / TRA average the retain
classes that do have samples (NaN if none has); UA / TUA are NaN when the forget class has no
samples in that split. For random and index forget sets the accuracies are over images (see
:func:`accuracy_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - type hints only: importing mucomp.evaluation imports torch
    from mucomp.data import Scenario
    from mucomp.evaluation import Evaluation


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each true class, ``[num_classes]``; NaN for a class with no samples."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError("labels and predictions must have the same shape")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    correct = np.bincount(labels[labels == predictions], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)


def _mean_present(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def accuracy_metrics(train_eval: Evaluation, test_eval: Evaluation, forget_class: int | Sequence[int] | Scenario) -> dict:
    """UA, RA, TUA, TRA and the per-class accuracies of one model.

    ``forget_class``: a class index, several class indices, or a :class:`~mucomp.data.Scenario`
    (whose forget set may be images rather than classes).

    Returns ``{"UA", "RA", "TUA", "TRA": float or None, "accs", "t_accs": list[float] (length C)}``.
    Class forget sets: UA / TUA are the mean train / test accuracies of the forget classes, RA / TRA
    the means of the per-class train / test accuracies over the other classes. Random and index
    forget sets (docs/definitions.md, "Forget sets and seeds"): UA = accuracy on the forget images, RA = accuracy
    on the other training images, TRA = test accuracy over every class (TA), TUA = None (a random
    set has no test counterpart).
    """
    num_classes = train_eval.num_classes
    accs = per_class_accuracy(train_eval.labels, train_eval.predictions, num_classes)
    t_accs = per_class_accuracy(test_eval.labels, test_eval.predictions, num_classes)
    per_class = {"accs": accs.tolist(), "t_accs": t_accs.tolist()}
    forget = forget_class
    if hasattr(forget, "forget_set") and not forget.by_class:
        correct = train_eval.predictions == train_eval.labels
        is_forget = np.isin(train_eval.indices, forget.forget_indices)
        test_accuracy = _share(test_eval.predictions == test_eval.labels)
        return {"UA": _share(correct[is_forget]), "RA": _share(correct[~is_forget]), "TUA": None,
                "TRA": test_accuracy, **per_class}
    classes = forget.forget_classes if hasattr(forget, "forget_set") else np.atleast_1d(forget)
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size == 0 or classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"forget classes must lie in [0, {num_classes - 1}], got {classes.tolist()}")
    retain = ~np.isin(np.arange(num_classes), classes)
    return {
        "UA": _mean_present(accs[classes]),
        "RA": _mean_present(accs[retain]),
        "TUA": _mean_present(t_accs[classes]),
        "TRA": _mean_present(t_accs[retain]),
        **per_class,
    }


def _share(hits: np.ndarray) -> float:
    """The share of True in ``hits``; NaN when it is empty."""
    return float(hits.mean()) if hits.size else float("nan")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, ``[n, C]``, computed stably in float64.

    Finite for all finite ``logits / temperature``: after subtracting the row maximum every entry
    is ``<= 0`` (a spread beyond the float64 range becomes ``-inf``, i.e. probability 0, without a
    warning), and the top entry gives ``exp(0) = 1``, so each row sums to at least 1 before the
    division. Entries may underflow to exactly 0.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    with np.errstate(over="ignore"):
        z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def retemper(probs: np.ndarray, from_temperature: float, to_temperature: float = 1.0) -> np.ndarray:
    """Softmax probabilities at ``from_temperature`` re-expressed at ``to_temperature``, without
    the logits: ``softmax(z / T1)`` -> ``softmax(z / T2)``, ``[n, C]`` (or ``[C]``) float64.

    ``log softmax(z / T1) = z / T1 - c`` per row, so ``softmax(z / T2)`` is proportional to
    ``p ** (T1 / T2)``; e.g. the stored embedding probabilities at T = 2 give the T = 1 ones as
    ``p ** 2``, renormalised. Computed in the log domain (stable for tiny entries); an entry of
    exactly 0 stays 0, each row sums to 1.
    """
    if not (from_temperature > 0 and to_temperature > 0):
        raise ValueError(f"temperatures must be positive, got {from_temperature} and {to_temperature}")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim not in (1, 2) or (p.size and (not np.all(np.isfinite(p)) or p.min() < 0)):
        raise ValueError("probs must be a [C] or [n, C] array of finite non-negative probabilities")
    rows = np.atleast_2d(p)
    if rows.size and not np.all(rows.max(axis=1) > 0):
        raise ValueError("every row of probs needs a positive entry")
    with np.errstate(divide="ignore"):
        z = np.log(rows) * (float(from_temperature) / float(to_temperature))
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z[0] if p.ndim == 1 else z


def prediction_matrix(evaluation: Evaluation, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(label_dist, conf_dist)``, both ``[C, C]`` float64.

    ``label_dist[t, p]``: share of true-class-``t`` samples predicted ``p`` (rows sum to 1).
    ``conf_dist[t, p]``: mean softmax probability (T = 1) given to ``p`` over true-class-``t``
    samples (rows sum to 1). Rows of classes with no samples are NaN.
    """
    num_classes = evaluation.num_classes if num_classes is None else num_classes
    labels = evaluation.labels.astype(np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)[:, None]
    hits = np.zeros((num_classes, num_classes))
    np.add.at(hits, (labels, evaluation.predictions), 1.0)
    mass = np.zeros((num_classes, num_classes))
    np.add.at(mass, labels, softmax(evaluation.logits))
    with np.errstate(invalid="ignore", divide="ignore"):
        label_dist = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
        conf_dist = np.where(counts > 0, mass / np.maximum(counts, 1), np.nan)
    return label_dist, conf_dist


def model_metrics(train_eval: Evaluation, test_eval: Evaluation, forget_class: int | Sequence[int] | Scenario) -> dict:
    """Accuracy metrics (:func:`accuracy_metrics`) plus both splits' prediction matrices, with the
    CLI's metric keys."""
    metrics = accuracy_metrics(train_eval, test_eval, forget_class)
    for prefix, evaluation in (("", train_eval), ("t_", test_eval)):
        label_dist, conf_dist = prediction_matrix(evaluation)
        metrics[f"{prefix}label_dist"] = label_dist.tolist()
        metrics[f"{prefix}conf_dist"] = conf_dist.tolist()
    return metrics


def ua_salun(metrics: dict) -> float:
    """The literature's "unlearning accuracy": 1 - forget-set accuracy (higher = more forgotten)."""
    return 1.0 - float(metrics["UA"])


AVG_GAP_KEYS = ("UA", "RA", "TRA", "MIA_efficacy")


def avg_gap(metrics: dict, retrained_metrics: dict) -> float:
    """Mean absolute difference to the Retrained model over forget accuracy, RA, TRA and
    MIA-Efficacy (SalUn's Avg. Gap; lower is better). NaN if any of them is missing or NaN."""
    gaps = []
    for key in AVG_GAP_KEYS:
        a, b = metrics.get(key), retrained_metrics.get(key)
        if a is None or b is None or math.isnan(a) or math.isnan(b):
            return float("nan")
        gaps.append(abs(float(a) - float(b)))
    return float(np.mean(gaps))


def to_json_safe(value):
    """Replace NaN / inf floats by ``None`` recursively, and numpy scalars / arrays by Python types,
    so the result serialises as strict JSON."""
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_safe(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
