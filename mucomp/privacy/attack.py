"""The threshold attack's definitions: the attack features, the attack score and the sweeps
(see :mod:`mucomp.privacy`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mucomp.metrics import softmax

METRICS: tuple[str, ...] = ("entropy", "confidence")
DIRECTIONS: tuple[str, ...] = ("above_unlearn", "above_retrain")
#: Display range of each metric; values are clipped into it before any threshold is applied.
METRIC_RANGES: dict[str, tuple[float, float]] = {"entropy": (0.0, 2.5), "confidence": (-2.5, 10.0)}
#: The threshold the "custom" strategy starts from (the middle of the range, as published).
DEFAULT_THRESHOLDS: dict[str, float] = {"entropy": 1.25, "confidence": 3.75}
STRATEGIES: tuple[str, ...] = ("custom", "max_attack_score", "max_success_rate", "common", "worst_case")
DELTA = 1e-5
#: Thresholds per metric of the published privacy score (the comparator's stored curves).
PUBLISHED_GRID = 51
#: Rates are clipped into ``[RATE_EPS, 1 - delta - RATE_EPS]`` before taking logs.
RATE_EPS = 1e-10
#: The log-odds of a prediction so certain that it exceeds the float64 range (and of 1-class logits).
LOGODDS_MAX = float(np.finfo(np.float64).max)
SWEEP_COLUMNS: tuple[str, ...] = ("threshold", "direction", "fpr", "fnr", "attack_score")

_LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# Validation


def check_metric(metric: str) -> tuple[float, float]:
    if metric not in METRIC_RANGES:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(repr(m) for m in METRICS)}")
    return METRIC_RANGES[metric]


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; use one of {', '.join(repr(d) for d in DIRECTIONS)}")
    return direction


def _values(values: Any, name: str) -> np.ndarray:
    """A non-empty, finite, 1-D float64 copy of ``values``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {type(values).__name__}") from err
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: the attack needs at least one sample per model")
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array))[:5].tolist()
        raise ValueError(f"{name} holds NaN or infinite values (positions {bad}); attack values must be finite")
    return array


def value_pair(unlearned: Any, retrained: Any) -> tuple[np.ndarray, np.ndarray]:
    u = _values(unlearned, "unlearned_values")
    r = _values(retrained, "retrained_values")
    if u.size != r.size:
        raise ValueError(
            f"unlearned_values has {u.size} samples and retrained_values {r.size}: the attack compares "
            "the same forget images through both models, so pass one value per image for each, in the same order"
        )
    return u, r


def logits_array(logits: Any, name: str = "logits") -> np.ndarray:
    try:
        z = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {type(logits).__name__}") from err
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"{name} must have shape [n_samples, n_classes] with n_classes >= 1, got {z.shape}")
    if not np.isfinite(z).all():
        rows = np.flatnonzero(~np.isfinite(z).all(axis=1))[:5].tolist()
        raise ValueError(f"{name} holds NaN or infinite values (rows {rows}); logits must be finite")
    return z


def clip_values(values: np.ndarray, metric: str) -> np.ndarray:
    lo, hi = METRIC_RANGES[metric]
    return np.clip(values, lo, hi)


# ---------------------------------------------------------------------------------------------
# Features


def attack_features(logits: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(entropy_T2, top1_logodds_T1)`` per sample, both float64 ``[n]``.

    Parameters
    ----------
    logits:
        ``[n, C]`` finite logits (any float dtype; computed in float64). ``n`` may be 0.

    Returns
    -------
    entropy_T2:
        Entropy in nats of ``softmax(logits / 2)``, in ``[0, ln C]``.
    top1_logodds_T1:
        ``log p_max - log(1 - p_max)`` with ``p = softmax(logits)``, computed as
        ``z_max - logsumexp(z without one top-1 entry)``: a tie for the top gives ``<= 0`` (two tied
        classes alone give exactly 0), uniform logits give ``-ln(C - 1)``. Never NaN or inf: a margin
        too large for float64 (only possible for float64 logits beyond about 1e308) and the 1-class
        case (``1 - p_max = 0``) give :data:`LOGODDS_MAX`.
    """
    z = logits_array(logits)
    n, c = z.shape
    if n == 0:
        return np.zeros(0), np.zeros(0)
    rows = np.arange(n)
    # Entropy at T = 2: -sum(p log p), 0 log 0 taken as 0. softmax is finite for finite logits
    # (entries of a spread beyond the float64 range underflow to 0), so this is too.
    p = softmax(z, 2.0)
    log_p = np.log(p, out=np.zeros_like(p), where=p > 0)
    entropy = np.clip(0.0 - (p * log_p).sum(axis=1), 0.0, math.log(c))  # 0.0 - x: never -0.0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # Top-1 log-odds at T = 1.
        if c == 1:
            return entropy, np.full(n, LOGODDS_MAX)
        top = z.argmax(axis=1)
        d = z - z[rows, top][:, None]  # <= 0
        d[rows, top] = -np.inf  # drop exactly one top-1 entry; a tied one stays
        m = d.max(axis=1)  # minus the top-1 margin; -inf only if the margin overflows
        finite = np.isfinite(m)
        shift = np.where(finite, m, 0.0)
        lse_rest = shift + np.log(np.exp(d - shift[:, None]).sum(axis=1))
        # lse_rest >= m (the sum holds exp(0)), so -lse_rest <= margin <= LOGODDS_MAX where finite.
        logodds = np.where(finite, -lse_rest, LOGODDS_MAX)
    return entropy, logodds


def feature_values(logits: Any) -> dict[str, np.ndarray]:
    """:func:`attack_features` keyed by metric name: ``{"entropy": [n], "confidence": [n]}``."""
    entropy, logodds = attack_features(logits)
    return {"entropy": entropy, "confidence": logodds}


# ---------------------------------------------------------------------------------------------
# Attack score and sweeps


def _rates(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise ValueError(f"{name} must be rates in [0, 1]")
    return array


def attack_scores(fpr: Any, fnr: Any, delta: float = DELTA) -> np.ndarray:
    """Vectorised :func:`attack_score`: element-wise scores of broadcast ``fpr`` and ``fnr`` arrays."""
    if not (isinstance(delta, (int, float, np.floating)) and 0.0 <= float(delta) < 0.5):
        raise ValueError(f"delta must lie in [0, 0.5), got {delta!r}")
    delta = float(delta)
    fpr, fnr = np.broadcast_arrays(_rates(fpr, "fpr"), _rates(fnr, "fnr"))
    lo, hi = RATE_EPS, 1.0 - delta - RATE_EPS
    sfp = np.clip(fpr, lo, hi)
    sfn = np.clip(fnr, lo, hi)
    eps = np.maximum(
        0.0,
        np.minimum(np.log(1.0 - delta - sfp) - np.log(sfn), np.log(1.0 - delta - sfn) - np.log(sfp)),
    )
    score = -np.expm1(-eps * _LN2)  # 1 - 2**(-eps), accurate for small eps
    score = np.where((fpr >= 1.0 - delta) | (fnr >= 1.0 - delta), 0.0, score)
    return np.where((fpr == 0) & (fnr == 0), 1.0, score)


def attack_score(fpr: float, fnr: float, delta: float = DELTA) -> float:
    """Epsilon attack score of one threshold attack, ``1 - 2**(-epsilon)``, in ``[0, 1]``.

    ``fpr`` and ``fnr`` are rates in ``[0, 1]``. ``FPR = FNR = 0`` (perfect attack) gives 1;
    ``FPR >= 1 - delta`` or ``FNR >= 1 - delta`` gives 0; otherwise both are clipped into
    ``[1e-10, 1 - delta - 1e-10]`` and
    ``epsilon = max(0, min(ln(1 - delta - FPR) - ln FNR, ln(1 - delta - FNR) - ln FPR))``.
    Symmetric in ``fpr`` and ``fnr``; 0 whenever ``FPR + FNR >= 1 - delta`` (no better than chance).
    """
    return float(attack_scores(fpr, fnr, delta))


def grid_thresholds(metric: str, n_thresholds: int = 51) -> np.ndarray:
    """``n_thresholds`` thresholds evenly spaced over the metric's range, ``numpy.linspace`` exactly.

    The exact float values matter: with values stored to 2 decimals, ``linspace(0, 2.5, 51)[3]`` is
    ``0.15000000000000002`` and a value ``0.15`` is *below* it; the published curves rely on this.
    """
    lo, hi = check_metric(metric)
    if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, (int, np.integer)) or n_thresholds < 2:
        raise ValueError(f"n_thresholds must be an integer >= 2, got {n_thresholds!r}")
    return np.linspace(lo, hi, int(n_thresholds))


def _count_at_or_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def sweep_curve(u: np.ndarray, r: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Rates of both directions at ``thresholds`` for clipped values ``u`` and ``r``.

    Returns arrays ``[2, T]`` (row 0: above_unlearn, row 1: above_retrain): ``fpr``, ``fnr``,
    ``attack_score``, ``success_rate`` (share of all ``|u| + |r|`` samples attributed correctly).
    """
    nu, nr = u.size, r.size
    u_above = _count_at_or_above(np.sort(u), thresholds)
    r_above = _count_at_or_above(np.sort(r), thresholds)
    # above_unlearn: positives U; above_retrain: positives V.
    fpr = np.stack([r_above / nr, u_above / nu])
    fnr = np.stack([(nu - u_above) / nu, (nr - r_above) / nr])
    correct_unlearn = u_above + (nr - r_above)
    success = np.stack([correct_unlearn, (nu + nr) - correct_unlearn]) / (nu + nr)
    return {"fpr": fpr, "fnr": fnr, "attack_score": attack_scores(fpr, fnr), "success_rate": success}


def _frame(thresholds: np.ndarray, curve: dict[str, np.ndarray]) -> pd.DataFrame:
    t = thresholds.size
    return pd.DataFrame(
        {
            "threshold": np.tile(thresholds, 2),
            "direction": np.repeat(np.array(DIRECTIONS, dtype=object), t),
            "fpr": curve["fpr"].ravel(),
            "fnr": curve["fnr"].ravel(),
            "attack_score": curve["attack_score"].ravel(),
        },
        columns=list(SWEEP_COLUMNS),
    )


def threshold_sweep(unlearned_values: Any, retrained_values: Any, metric: str, n_thresholds: int = 51) -> pd.DataFrame:
    """The grid sweep: both directions at ``n_thresholds`` thresholds evenly spaced over the range.

    Parameters
    ----------
    unlearned_values, retrained_values:
        ``[n]`` finite feature values of the same forget images (same order) under the unlearned
        and the Retrained model, as :func:`attack_features` gives them.
    metric:
        ``"entropy"`` or ``"confidence"`` (top-1 log-odds); picks the range of
        :data:`METRIC_RANGES` the values are clipped into and the thresholds span.
    n_thresholds:
        Number of thresholds, ``>= 2`` (51 is the published display grid).

    Returns
    -------
    pandas.DataFrame
        ``2 * n_thresholds`` rows: all ``"above_unlearn"`` rows (ascending threshold), then all
        ``"above_retrain"`` rows. Columns ``threshold``, ``direction``, ``fpr``, ``fnr``,
        ``attack_score`` (floats in [0, 1], unrounded).
    """
    thresholds = grid_thresholds(metric, n_thresholds)
    u, r = value_pair(unlearned_values, retrained_values)
    return _frame(thresholds, sweep_curve(clip_values(u, metric), clip_values(r, metric), thresholds))


def candidate_thresholds(
    u: np.ndarray, r: np.ndarray, metric: str, n_thresholds: int | None, *extra: np.ndarray, clip: bool = True
) -> np.ndarray:
    """The thresholds a search tries: the ``n_thresholds`` grid, or (``None``) every distinct
    value of ``u``, ``r`` and ``extra``, clipped unless ``clip=False``, ascending (the exact
    sweep's thresholds)."""
    if n_thresholds is not None:
        return grid_thresholds(metric, n_thresholds)
    values = (u, r, *extra)
    return np.unique(np.concatenate([clip_values(v, metric) if clip else v for v in values]))


def exact_thresholds(unlearned_values: Any, retrained_values: Any, metric: str) -> np.ndarray:
    """Every distinct clipped value of both models, ascending: the thresholds of the exact sweep."""
    check_metric(metric)
    u, r = value_pair(unlearned_values, retrained_values)
    return candidate_thresholds(u, r, metric, None)


def threshold_sweep_exact(unlearned_values: Any, retrained_values: Any, metric: str) -> pd.DataFrame:
    """The exact sweep: both directions at every distinct clipped value, O(n log n).

    ``mean(values >= t)`` only changes at a data value, so these thresholds reach every
    ``(FPR, FNR)`` pair of every threshold inside the metric's range (thresholds below all values
    or above all values give ``FPR = 1`` or ``FNR = 1``: score 0). Its largest attack score is
    therefore the supremum over all thresholds, and never smaller than the grid sweep's.
    Same inputs and columns as :func:`threshold_sweep`.
    """
    check_metric(metric)
    u, r = value_pair(unlearned_values, retrained_values)
    thresholds = candidate_thresholds(u, r, metric, None)
    return _frame(thresholds, sweep_curve(clip_values(u, metric), clip_values(r, metric), thresholds))
