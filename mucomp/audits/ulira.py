"""U-LiRA: a per-example likelihood-ratio membership attack against an unlearned model.

Source: J. Hayes, I. Shumailov, E. Triantafillou, A. Khalifa, N. Papernot, "Inexact Unlearning
Needs More Careful Evaluations to Avoid a False Sense of Privacy", SaTML 2025 (arXiv 2403.01218),
the U-LiRA attack built on LiRA (Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022). A population attack (:mod:`mucomp.privacy`) uses one threshold for
every image; U-LiRA fits, *per forget image*, how that image's score is distributed under models
unlearned by the method and under models retrained without the forget set, so it sees what a
population attack averages away.

Definitions (also in docs/definitions.md, "Audits"):

- feature, per image with true class y: φ = log p_y − log(1 − p_y), p = softmax(z) at T = 1,
  computed from the logits as ``z_y − logsumexp(z_{j≠y})`` (exact, never inf for finite logits);
- K shadow pairs k: the Original trained with training seed s_k and unlearned by the
  experiment's method and hyper-parameters with unlearning seed s_k, and the Retrained model of
  training seed s_k. Per image a Gaussian over the K unlearned φ and one over the K retrained φ.
  As LiRA's reference code (tensorflow/privacy ``research/mi_lira_2021/plot.py``): the centre is
  the **median** over the shadows (``center="mean"`` offers the mean); the spread is either one
  **global** standard deviation, that of every unlearned-shadow φ (all images and shadows, ddof
  0), used for both Gaussians (LiRA's ``fix_variance``, which its README recommends with few
  shadows, the default while K < :data:`GLOBAL_VARIANCE_BELOW`), or each image's own
  (``variance="per_image"``, ddof 0); floored at :data:`MIN_STD`;
- LR = log N(φ; μ_u, σ_u) − log N(φ; μ_r, σ_r): > 0 says "unlearned by the method", <= 0 says
  "retrained";
- U-LiRA accuracy on M further pairs j (held out of the fit): the mean over images and pairs of
  ½·[LR(unlearned_j) > 0] + ½·[LR(retrained_j) ≤ 0] (Hayes et al.'s fixed threshold). 0.5 = the
  method is indistinguishable from retraining; 1 = every image gives it away;
- LiRA's threshold-free figures over the same held-out LRs (``plot.py`` ``sweep``): the ROC of
  "unlearned" (positive) against "retrained", pooled over images and pairs; its ``auc``, the
  best-threshold balanced accuracy ``max(1 − (FPR + 1 − TPR) / 2)`` and the TPR at 1 % and 0.1 %
  FPR (the last TPR whose FPR is below the level); a level below 1 / (M·n) is not resolved by the
  held-out sample and is stored as null.

Pure functions on arrays of φ; :mod:`mucomp.experiment.shadows` trains and caches the shadow
models and calls :func:`ulira_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Floor of the per-image standard deviations (Hayes et al. fit Gaussians that can collapse when
#: every shadow gives one image the same score).
MIN_STD = 1e-3
#: Default numbers of fitted and held-out shadow pairs on digits.
DEFAULT_SHADOWS = 8
DEFAULT_HELD_OUT = 4
#: The Gaussians' centre and spread (see the module's definitions).
CENTERS = ("median", "mean")
VARIANCES = ("global", "per_image")
#: With fewer fitted shadows than this, the global variance is the default (LiRA's README: the
#: fixed-variance variant performs best when only a few shadow models are trained).
GLOBAL_VARIANCE_BELOW = 64
#: The false-positive rates at which the TPR is reported.
FPR_LEVELS = (0.01, 0.001)
#: Training seeds of the shadow models: SHADOW_SEED_BASE, SHADOW_SEED_BASE + 1, ... (skipping the
#: experiment's own training seed), far from the seeds people pick, so no shadow is the target.
SHADOW_SEED_BASE = 1000


# ---------------------------------------------------------------------------------------------
# Pure definitions


def phi(values: Any, labels: Any, *, kind: str = "auto") -> np.ndarray:
    """The U-LiRA feature φ = log p_y − log(1 − p_y) per image, float64 ``[n]``.

    ``values``: ``[n, C]`` logits (``kind="logits"``) or softmax probabilities at T = 1
    (``kind="probs"``); ``"auto"`` takes rows of non-negative values summing to 1 (within 1e-4) as
    probabilities. ``labels``: ``[n]`` true classes y.

    From logits: ``z_y − logsumexp(z_{j≠y})`` (exact and finite for finite logits). From
    probabilities: ``log p_y − log sum_{j≠y} p_j`` with both clipped at 1e-300 (probabilities
    stored at float precision lose the far tails; pass logits where you have them).
    """
    z = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"values must be [n, C] with C >= 2, got shape {z.shape}")
    if y.shape != (z.shape[0],) or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"labels must be [n] integer classes for {z.shape[0]} rows, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in 0..{z.shape[1] - 1}")
    if not np.isfinite(z).all():
        raise ValueError("values must be finite")
    if kind == "auto":
        kind = "probs" if z.size and (z >= 0).all() and np.allclose(z.sum(axis=1), 1.0, atol=1e-4) else "logits"
    if kind not in ("logits", "probs"):
        raise ValueError(f"kind must be 'auto', 'logits' or 'probs', got {kind!r}")
    n = z.shape[0]
    if n == 0:
        return np.zeros(0)
    rows = np.arange(n)
    others = np.ones_like(z, dtype=bool)
    others[rows, y] = False
    if kind == "probs":
        rest = np.where(others, z, 0.0).sum(axis=1)
        return np.log(np.maximum(z[rows, y], 1e-300)) - np.log(np.maximum(rest, 1e-300))
    other = z[others].reshape(n, -1)
    top = other.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(other - top).sum(axis=1))
    return z[rows, y] - lse


def _matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"{name} must be [K, n] with K >= 1 shadow models, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite φ values")
    return array


def default_variance(shadows: int) -> str:
    """``"global"`` with fewer than :data:`GLOBAL_VARIANCE_BELOW` fitted shadows, else ``"per_image"``."""
    return "global" if shadows < GLOBAL_VARIANCE_BELOW else "per_image"


def _check_estimator(center: str, variance: str) -> None:
    if center not in CENTERS:
        raise ValueError(f"center must be one of {', '.join(CENTERS)}, got {center!r}")
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}")


def gaussian_fit(shadows: Any, min_std: float = MIN_STD, *, center: str = "median",
                 variance: str = "per_image") -> tuple[np.ndarray, np.ndarray]:
    """Per image (column) centre and standard deviation of ``[K, n]`` φ values; ``([n], [n])``.

    ``center``: ``"median"`` (LiRA) or ``"mean"``; ``variance``: ``"per_image"`` (ddof 0) or
    ``"global"`` (the std of every value, the same for each image). Floored at ``min_std``.
    """
    _check_estimator(center, variance)
    values = _matrix(shadows, "shadows")
    mu = np.median(values, axis=0) if center == "median" else values.mean(axis=0)
    spread = values.std(axis=0, ddof=0) if variance == "per_image" else np.full(values.shape[1], values.std(ddof=0))
    return mu, np.maximum(spread, min_std)


def gaussian_logpdf(x: Any, mu: Any, sigma: Any) -> np.ndarray:
    """log N(x; μ, σ) elementwise (broadcasting)."""
    x, mu, sigma = (np.asarray(v, dtype=np.float64) for v in (x, mu, sigma))
    return -0.5 * np.log(2.0 * np.pi) - np.log(sigma) - 0.5 * ((x - mu) / sigma) ** 2


def likelihood_ratio(target: Any, unlearned_shadows: Any, retrained_shadows: Any, *, center: str = "median",
                     variance: str | None = None) -> np.ndarray:
    """Per-image log likelihood ratio LR = log N(φ; μ_u, σ_u) − log N(φ; μ_r, σ_r).

    ``target``: ``[n]`` φ of the model under attack (``[M, n]`` for M models at once);
    ``unlearned_shadows`` / ``retrained_shadows``: ``[K, n]`` φ of the K shadow unlearned and
    shadow Retrained models (K may differ between the two). ``center`` / ``variance``: the
    estimator (module docstring; ``variance=None``: :func:`default_variance` of the unlearned K).
    With the global variance both Gaussians take the unlearned shadows' σ, as LiRA's
    ``fix_variance`` takes the in-models'. Returns ``[n]`` (or ``[M, n]``); > 0 means the image
    looks unlearned by the method rather than retrained. Identical shadow sets give 0 everywhere.
    """
    u, r = _matrix(unlearned_shadows, "unlearned_shadows"), _matrix(retrained_shadows, "retrained_shadows")
    x = np.asarray(target, dtype=np.float64)
    n = u.shape[1]
    if r.shape[1] != n or x.ndim not in (1, 2) or x.shape[-1] != n:
        raise ValueError(f"shapes differ: target {x.shape}, unlearned_shadows {u.shape}, retrained_shadows {r.shape}; "
                         "every array must hold the same n images")
    if not np.isfinite(x).all():
        raise ValueError("target must hold finite φ values")
    variance = variance or default_variance(u.shape[0])
    mu_u, sd_u = gaussian_fit(u, center=center, variance=variance)
    mu_r, sd_r = gaussian_fit(r, center=center, variance=variance)
    if variance == "global":
        sd_r = sd_u
    # The normalising constants cancel; written out for clarity.
    return gaussian_logpdf(x, mu_u, sd_u) - gaussian_logpdf(x, mu_r, sd_r)


def ulira_accuracy(lr_unlearned: Any, lr_retrained: Any) -> float:
    """U-LiRA accuracy: mean over images and held-out pairs of ½·[LR(unlearned_j) > 0] +
    ½·[LR(retrained_j) ≤ 0]. ``lr_unlearned`` / ``lr_retrained``: ``[M, n]`` (``[n]`` for one
    pair). 0.5 = indistinguishable from retraining, 1 = always told apart."""
    u, r = np.asarray(lr_unlearned, dtype=np.float64), np.asarray(lr_retrained, dtype=np.float64)
    if u.shape != r.shape or u.size == 0 or u.ndim not in (1, 2):
        raise ValueError(f"lr_unlearned {u.shape} and lr_retrained {r.shape} must both be [M, n] and non-empty")
    if np.isnan(u).any() or np.isnan(r).any():
        raise ValueError("likelihood ratios must not be NaN")
    return float(np.mean(0.5 * (u > 0) + 0.5 * (r <= 0)))


def roc_figures(lr_unlearned: Any, lr_retrained: Any) -> dict[str, Any]:
    """LiRA's threshold-free figures of held-out likelihood ratios (``plot.py`` ``sweep``).

    ``lr_unlearned`` / ``lr_retrained``: ``[M, n]`` (or ``[n]``) LRs of held-out unlearned
    (positives) and retrained (negatives) models, pooled. Returns ``{"auc", "balanced_accuracy_best",
    "tpr_at_fpr": {"0.01": float | None, "0.001": ...}, "negatives"}``: a level below 1 / negatives
    is None (the held-out sample can't resolve it).
    """
    from sklearn.metrics import auc, roc_curve

    u = np.asarray(lr_unlearned, dtype=np.float64).ravel()
    r = np.asarray(lr_retrained, dtype=np.float64).ravel()
    if u.size == 0 or r.size == 0 or np.isnan(u).any() or np.isnan(r).any():
        raise ValueError("roc_figures needs non-empty likelihood ratios without NaN on both sides")
    labels = np.concatenate([np.ones(u.size), np.zeros(r.size)])
    fpr, tpr, _ = roc_curve(labels, np.concatenate([u, r]))
    at = {}
    for level in FPR_LEVELS:
        below = np.flatnonzero(fpr < level)
        at[repr(level)] = float(tpr[below[-1]]) if level * r.size >= 1 and below.size else None
    return {"auc": float(auc(fpr, tpr)), "balanced_accuracy_best": float(np.max(1 - (fpr + (1 - tpr)) / 2)),
            "tpr_at_fpr": at, "negatives": int(r.size)}


def shadow_seeds(count: int, exclude: Sequence[int] = (), base: int = SHADOW_SEED_BASE) -> list[int]:
    """The first ``count`` training seeds from ``base`` up, skipping ``exclude`` (the target's)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    seeds, candidate, skip = [], base, set(int(s) for s in exclude)
    while len(seeds) < count:
        if candidate not in skip:
            seeds.append(candidate)
        candidate += 1
    return seeds


def ulira_report(target_phi: Any, fit_unlearned: Any, fit_retrained: Any, held_unlearned: Any,
                 held_retrained: Any, *, center: str = "median", variance: str | None = None) -> dict[str, Any]:
    """The U-LiRA figures of one model from φ arrays.

    ``target_phi`` ``[n]``: the model under attack; ``fit_*`` ``[K, n]``: the K fitted shadow
    pairs; ``held_*`` ``[M, n]``: the M held-out pairs that measure the attack. ``center`` /
    ``variance``: the estimator (:func:`likelihood_ratio`). Returns ``{"accuracy",
    "accuracy_per_pair" [M], "auc", "balanced_accuracy_best", "tpr_at_fpr", "estimator", "phi",
    "lr" [n], "mu_unlearned", "sigma_unlearned", "mu_retrained", "sigma_retrained" [n],
    "share_flagged"}`` (lists, JSON-ready).
    """
    u, r = _matrix(fit_unlearned, "fit_unlearned"), _matrix(fit_retrained, "fit_retrained")
    held_u, held_r = _matrix(held_unlearned, "held_unlearned"), _matrix(held_retrained, "held_retrained")
    target = np.asarray(target_phi, dtype=np.float64)
    variance = variance or default_variance(u.shape[0])
    estimator = {"center": center, "variance": variance}
    lr_u = likelihood_ratio(held_u, u, r, **estimator)
    lr_r = likelihood_ratio(held_r, u, r, **estimator)
    lr = likelihood_ratio(target, u, r, **estimator)
    mu_u, sd_u = gaussian_fit(u, **estimator)
    mu_r, sd_r = gaussian_fit(r, **estimator)
    if variance == "global":
        sd_r = sd_u
    roc = roc_figures(lr_u, lr_r)
    return {
        "accuracy": ulira_accuracy(lr_u, lr_r),
        "accuracy_per_pair": [ulira_accuracy(lr_u[j], lr_r[j]) for j in range(held_u.shape[0])],
        "auc": roc["auc"],
        "balanced_accuracy_best": roc["balanced_accuracy_best"],
        "tpr_at_fpr": roc["tpr_at_fpr"],
        "estimator": estimator,
        "phi": target.tolist(),
        "lr": lr.tolist(),
        "mu_unlearned": mu_u.tolist(),
        "sigma_unlearned": sd_u.tolist(),
        "mu_retrained": mu_r.tolist(),
        "sigma_retrained": sd_r.tolist(),
        "share_flagged": float(np.mean(lr > 0)),
    }
