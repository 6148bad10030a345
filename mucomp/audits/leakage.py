"""Class leakage: after unlearning, where does the forget images' probability mass go?

Read from the softmax (T = 1) of the forget images under the model and under the Retrained model
(the same images, the same order). A model that forgot the way retraining does spreads the mass
like the Retrained model; one that still ranks the forgotten class second has hidden it, not lost
it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _probabilities(probs: Any, name: str) -> np.ndarray:
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"{name} must be [n_images, n_classes] probabilities with n >= 1 and >= 2 classes")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    total = array.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"{name} has a row that sums to 0")
    return array / total


def js_divergence(p: Any, q: Any) -> np.ndarray:
    """Jensen-Shannon divergence (natural log, in ``[0, ln 2]``) between matching rows of two
    ``[n, C]`` probability arrays; ``[n]``. 0 for identical rows."""
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p {p.shape} and q {q.shape} differ: pass the same images through both models")
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0)
        return terms.sum(axis=1)

    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, np.log(2.0))


def class_rank(probs: Any, forgotten: Any) -> np.ndarray:
    """Rank of the forgotten class in each row (1 = the most probable; ties count against it);
    ``[n]`` int. ``forgotten``: one class for every row, or ``[n]`` classes (one per row: an
    image's own true class when the forget set spans several classes or is a random set)."""
    p = _probabilities(probs, "probs")
    column = np.broadcast_to(np.asarray(forgotten, dtype=np.int64), (p.shape[0],))
    return (p > p[np.arange(p.shape[0]), column][:, None]).sum(axis=1) + 1


def class_leakage(model_probs: Any, retrained_probs: Any, forgotten: Any) -> dict[str, Any]:
    """The class-leakage figures of one model on the forget images.

    ``model_probs`` / ``retrained_probs``: ``[n, C]`` softmax (T = 1) of the same forget images;
    ``forgotten``: the forgotten class, or ``[n]`` per image (each image's true class).
    Returns ``{"mean_probability": [C] (the model's mean probability per class),
    "retrained_mean_probability": [C], "js_mean": float (mean JS divergence to the Retrained
    model, in [0, ln 2]), "rank_counts": [C] (images whose forgotten-class rank is 1..C),
    "retrained_rank_counts": [C], "mean_rank": float, "retrained_mean_rank": float}``.
    """
    p, q = _probabilities(model_probs, "model_probs"), _probabilities(retrained_probs, "retrained_probs")
    wanted = np.asarray(forgotten)
    if wanted.size == 0 or wanted.min() < 0 or wanted.max() >= p.shape[1] or wanted.ndim > 1 or (
            wanted.ndim == 1 and wanted.size != p.shape[0]):
        raise ValueError(f"forgotten class(es) {wanted.tolist()} out of range for {p.shape[1]} classes or not one per image")
    ranks, retrained_ranks = class_rank(p, forgotten), class_rank(q, forgotten)
    classes = p.shape[1]
    return {
        "mean_probability": p.mean(axis=0).tolist(),
        "retrained_mean_probability": q.mean(axis=0).tolist(),
        "js_mean": float(js_divergence(p, q).mean()),
        "rank_counts": np.bincount(ranks - 1, minlength=classes).tolist(),
        "retrained_rank_counts": np.bincount(retrained_ranks - 1, minlength=classes).tolist(),
        "mean_rank": float(ranks.mean()),
        "retrained_mean_rank": float(retrained_ranks.mean()),
    }
