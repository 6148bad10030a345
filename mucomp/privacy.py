"""Privacy audit: membership-inference attacks against the Retrained model, as docs/definitions.md defines them.

Everything here reads logits (or values derived from them); nothing runs a model.

Attack features (one value per forget image, from its logits ``z``):

- ``"entropy"``: entropy (natural log) of ``softmax(z / 2)``, in ``[0, ln C]``.
- ``"confidence"``: top-1 log-odds ``log p_max - log(1 - p_max)`` with ``p = softmax(z)``
  (the published system calls it "confidence"), computed as ``z_max - logsumexp(z without the
  top-1 entry)``. Finite for every finite input.

Threshold attack. The attacker sees one feature value and must say which model produced it: the
unlearned model ``U`` or the Retrained model ``V``, evaluated on the same forget images. For a
threshold ``t`` and a direction,

- ``"above_unlearn"``: values ``>= t`` are called "unlearned". Positives are ``U``:
  ``TPR = mean(U >= t)``, ``FPR = mean(V >= t)``, ``FNR = 1 - TPR``.
- ``"above_retrain"``: the same with ``U`` and ``V`` swapped.

Values are first clipped into the metric's display range (:data:`METRIC_RANGES`), as the
published system does. :func:`attack_score` turns one ``(FPR, FNR)`` into an epsilon-style score
in ``[0, 1]`` (0: no better than chance, 1: perfectly separated), and the privacy score is one
minus the worst attack score over both features, both directions and every threshold.

Two sweeps exist: :func:`threshold_sweep` evaluates ``n`` thresholds evenly spaced over the range
(``numpy.linspace``; the 51-point grid the Attack page draws and the published system stores), and
:func:`threshold_sweep_exact` evaluates every distinct (clipped) value as a threshold, which
reaches every ``(FPR, FNR)`` pair any threshold in the range can give. The strategies search the
exact sweep unless given ``n_thresholds``.

Two privacy scores are stored for every model (:func:`privacy_metrics`):

- ``PS``: the published definition, the worst attack over the :data:`PUBLISHED_GRID` thresholds
  of each metric's range (values clipped), comparable with the published system's figures;
- ``PS_exact``: the worst attack over every distinct value of either model as a threshold, values
  NOT clipped (so values beyond the display range still separate). Any grid threshold's
  ``(FPR, FNR)`` is also reached by some unclipped value threshold, hence ``PS_exact <= PS``.

MIA-Efficacy (:func:`mia_report`, :func:`mia_efficacy`) follows SalUn's ``SVC_MIA``: an RBF SVC
(``C = 3``, ``gamma = "auto"``) on the true-class probability learns members (retain training
images) vs non-members (test-retain images); the efficacy is the share of forget images it calls
non-members.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mucomp.metrics import softmax

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from mucomp.data import Scenario
    from mucomp.evaluation import Evaluation

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


def _check_metric(metric: str) -> tuple[float, float]:
    if metric not in METRIC_RANGES:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(repr(m) for m in METRICS)}")
    return METRIC_RANGES[metric]


def _check_direction(direction: str) -> str:
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


def _value_pair(unlearned: Any, retrained: Any) -> tuple[np.ndarray, np.ndarray]:
    u = _values(unlearned, "unlearned_values")
    r = _values(retrained, "retrained_values")
    if u.size != r.size:
        raise ValueError(
            f"unlearned_values has {u.size} samples and retrained_values {r.size}: the attack compares "
            "the same forget images through both models, so pass one value per image for each, in the same order"
        )
    return u, r


def _logits(logits: Any, name: str = "logits") -> np.ndarray:
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


def _clip(values: np.ndarray, metric: str) -> np.ndarray:
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
    z = _logits(logits)
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
    lo, hi = _check_metric(metric)
    if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, (int, np.integer)) or n_thresholds < 2:
        raise ValueError(f"n_thresholds must be an integer >= 2, got {n_thresholds!r}")
    return np.linspace(lo, hi, int(n_thresholds))


def _count_at_or_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def _curve(u: np.ndarray, r: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
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
    u, r = _value_pair(unlearned_values, retrained_values)
    return _frame(thresholds, _curve(_clip(u, metric), _clip(r, metric), thresholds))


def exact_thresholds(unlearned_values: Any, retrained_values: Any, metric: str) -> np.ndarray:
    """Every distinct clipped value of both models, ascending: the thresholds of the exact sweep."""
    _check_metric(metric)
    u, r = _value_pair(unlearned_values, retrained_values)
    return _candidates(u, r, metric, None)


def threshold_sweep_exact(unlearned_values: Any, retrained_values: Any, metric: str) -> pd.DataFrame:
    """The exact sweep: both directions at every distinct clipped value, O(n log n).

    ``mean(values >= t)`` only changes at a data value, so these thresholds reach every
    ``(FPR, FNR)`` pair of every threshold inside the metric's range (thresholds below all values
    or above all values give ``FPR = 1`` or ``FNR = 1``: score 0). Its largest attack score is
    therefore the supremum over all thresholds, and never smaller than the grid sweep's.
    Same inputs and columns as :func:`threshold_sweep`.
    """
    _check_metric(metric)
    u, r = _value_pair(unlearned_values, retrained_values)
    thresholds = _candidates(u, r, metric, None)
    return _frame(thresholds, _curve(_clip(u, metric), _clip(r, metric), thresholds))


# ---------------------------------------------------------------------------------------------
# Threshold strategies (the Attack page) and per-sample attribution


@dataclass(frozen=True)
class AttackChoice:
    """One threshold attack as the Attack page shows it.

    ``threshold`` applies to clipped values; ``direction`` says which model's values lie at or
    above it. ``fpr``, ``fnr``, ``attack_score`` as in :func:`threshold_sweep`; ``success_rate``
    is the share of all samples (both models) the attack attributes to the right model;
    ``privacy_score`` is ``1 - attack_score`` (the score at this threshold).
    """

    strategy: str
    metric: str
    direction: str
    threshold: float
    fpr: float
    fnr: float
    attack_score: float
    success_rate: float

    @property
    def privacy_score(self) -> float:
        return 1.0 - self.attack_score

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "privacy_score": self.privacy_score}


def _candidates(
    u: np.ndarray, r: np.ndarray, metric: str, n_thresholds: int | None, *extra: np.ndarray, clip: bool = True
) -> np.ndarray:
    """The thresholds a search tries: the ``n_thresholds`` grid, or (``None``) every distinct
    value of ``u``, ``r`` and ``extra``, clipped unless ``clip=False``, ascending (the exact
    sweep's thresholds)."""
    if n_thresholds is not None:
        return grid_thresholds(metric, n_thresholds)
    values = (u, r, *extra)
    return np.unique(np.concatenate([_clip(v, metric) if clip else v for v in values]))


def _choice(
    strategy: str, metric: str, thresholds: np.ndarray, curve: dict[str, np.ndarray], d: int, k: int
) -> AttackChoice:
    return AttackChoice(
        strategy=strategy,
        metric=metric,
        direction=DIRECTIONS[d],
        threshold=float(thresholds[k]),
        fpr=float(curve["fpr"][d, k]),
        fnr=float(curve["fnr"][d, k]),
        attack_score=float(curve["attack_score"][d, k]),
        success_rate=float(curve["success_rate"][d, k]),
    )


def _argbest(primary: np.ndarray, secondary: np.ndarray) -> tuple[int, int]:
    """Position ``(direction, threshold)`` of the largest ``primary``; ties go to the larger
    ``secondary``, then to ``above_unlearn``, then to the lower threshold."""
    flat_p, flat_s = primary.ravel(), secondary.ravel()
    order = np.arange(flat_p.size)
    best = np.lexsort((order, -flat_s, -flat_p))[0]  # last key sorts first
    d, k = np.unravel_index(best, primary.shape)
    return int(d), int(k)


def _best_choice(
    strategy: str, unlearned_values: Any, retrained_values: Any, metric: str, n_thresholds: int | None,
    keys: tuple[str, str], clip: bool = True,
) -> AttackChoice:
    """The candidate threshold and direction maximising ``curve[keys[0]]``, ties by ``keys[1]``.

    ``clip=False`` (exact search only) compares raw values with raw thresholds."""
    _check_metric(metric)
    u, r = _value_pair(unlearned_values, retrained_values)
    if n_thresholds is not None and not clip:
        raise ValueError("the grid spans the clipped display range; clip=False needs the exact search")
    thresholds = _candidates(u, r, metric, n_thresholds, clip=clip)
    if clip:
        u, r = _clip(u, metric), _clip(r, metric)
    curve = _curve(u, r, thresholds)
    d, k = _argbest(curve[keys[0]], curve[keys[1]])
    return _choice(strategy, metric, thresholds, curve, d, k)


def custom_threshold(
    unlearned_values: Any,
    retrained_values: Any,
    metric: str,
    threshold: float | None = None,
    direction: str | None = None,
) -> AttackChoice:
    """The attack at a user-chosen ``threshold`` (default: the middle of the range, 1.25 / 3.75).

    ``direction`` defaults to the one with the higher attack score there (ties: the higher success
    rate, then ``"above_unlearn"``).
    """
    _check_metric(metric)
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[metric]
    if not isinstance(threshold, (int, float, np.integer, np.floating)) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    u, r = _value_pair(unlearned_values, retrained_values)
    thresholds = np.array([float(threshold)])
    curve = _curve(_clip(u, metric), _clip(r, metric), thresholds)
    if direction is None:
        d, _ = _argbest(curve["attack_score"], curve["success_rate"])
    else:
        d = DIRECTIONS.index(_check_direction(direction))
    return _choice("custom", metric, thresholds, curve, d, 0)


def max_attack_score(
    unlearned_values: Any, retrained_values: Any, metric: str, n_thresholds: int | None = None, *, clip: bool = True
) -> AttackChoice:
    """The threshold and direction with the highest attack score for one metric.

    ``n_thresholds=None`` searches the exact sweep; an integer searches that grid instead (the
    display curve). ``clip=False`` (exact search only) uses the raw values, as ``PS_exact`` does.
    Ties: higher success rate, then ``"above_unlearn"``, then the lower threshold.
    """
    return _best_choice("max_attack_score", unlearned_values, retrained_values, metric, n_thresholds,
                        ("attack_score", "success_rate"), clip)


def max_success_rate(
    unlearned_values: Any, retrained_values: Any, metric: str, n_thresholds: int | None = None
) -> AttackChoice:
    """The threshold and direction that attribute the most samples to the right model.

    Success rate = (correct unlearned-model samples + correct Retrained samples) / all samples;
    the two directions' rates at one threshold sum to 1. Ties: higher attack score, then
    ``"above_unlearn"``, then the lower threshold. ``n_thresholds`` as in :func:`max_attack_score`.
    """
    return _best_choice("max_success_rate", unlearned_values, retrained_values, metric, n_thresholds,
                        ("success_rate", "attack_score"))


def common_threshold(
    unlearned_a: Any,
    unlearned_b: Any,
    retrained_values: Any,
    metric: str,
    n_thresholds: int | None = None,
) -> tuple[AttackChoice, AttackChoice]:
    """One threshold for Model A and Model B together: the one maximising the sum of both models'
    attack scores (each in its better direction there) against the same Retrained values.

    All three arrays hold the same forget images in the same order. Returns ``(choice_a,
    choice_b)`` at the same threshold, each with its own best direction. Ties: the larger sum of
    success rates, then the lower threshold.
    """
    _check_metric(metric)
    a, r = _value_pair(unlearned_a, retrained_values)
    b, _ = _value_pair(unlearned_b, retrained_values)
    thresholds = _candidates(a, r, metric, n_thresholds, b)
    rc = _clip(r, metric)
    curves = [_curve(_clip(a, metric), rc, thresholds), _curve(_clip(b, metric), rc, thresholds)]
    best_dirs = []
    for curve in curves:
        # Per threshold, the direction with the higher score (then the higher success rate).
        prefer_retrain = (curve["attack_score"][1] > curve["attack_score"][0]) | (
            (curve["attack_score"][1] == curve["attack_score"][0])
            & (curve["success_rate"][1] > curve["success_rate"][0])
        )
        best_dirs.append(prefer_retrain.astype(int))
    cols = np.arange(thresholds.size)
    total_score = sum(c["attack_score"][d, cols] for c, d in zip(curves, best_dirs, strict=True))
    total_success = sum(c["success_rate"][d, cols] for c, d in zip(curves, best_dirs, strict=True))
    k = int(np.lexsort((cols, -total_success, -total_score))[0])
    return tuple(  # type: ignore[return-value]
        _choice("common", metric, thresholds, c, int(d[k]), k) for c, d in zip(curves, best_dirs, strict=True)
    )


def _metric_values(values: Mapping[str, Any] | Any, name: str) -> Mapping[str, Any]:
    if isinstance(values, Mapping):
        missing = [m for m in METRICS if m not in values]
        if missing:
            raise ValueError(f"{name} lacks the metric(s) {missing}; pass feature_values(logits)")
        return values
    return feature_values(_logits(values, name))


def worst_case(
    unlearned: Mapping[str, Any] | Any,
    retrained: Mapping[str, Any] | Any,
    n_thresholds: int | None = None,
    *,
    clip: bool = True,
) -> AttackChoice:
    """The metric, direction and threshold with the highest attack score over both metrics.

    ``unlearned`` and ``retrained`` are either ``[n, C]`` logits of the same forget images or
    mappings ``{"entropy": [n], "confidence": [n]}`` (:func:`feature_values`). Ties between
    metrics go to ``"entropy"``. ``n_thresholds=PUBLISHED_GRID`` gives the attack behind ``PS``;
    ``n_thresholds=None, clip=False`` the one behind ``PS_exact``; ``None`` with clipping the
    strongest attack the Attack page's exact search can find.
    """
    u_map = _metric_values(unlearned, "unlearned")
    r_map = _metric_values(retrained, "retrained")
    best: AttackChoice | None = None
    for metric in METRICS:
        choice = max_attack_score(u_map[metric], r_map[metric], metric, n_thresholds, clip=clip)
        if best is None or (choice.attack_score, choice.success_rate) > (best.attack_score, best.success_rate):
            best = choice
    assert best is not None
    return AttackChoice(**{**asdict(best), "strategy": "worst_case"})


def privacy_score(unlearned_logits: Any, retrained_logits: Any, *, exact: bool = False) -> float:
    """Privacy score in ``[0, 1]``: 1 minus the highest attack score over both metrics and both
    directions. 1 = indistinguishable from the Retrained model.

    ``exact=False`` (``PS``, the published definition): the :data:`PUBLISHED_GRID` thresholds of
    each metric's range, values clipped. ``exact=True`` (``PS_exact``): every distinct raw value
    as a threshold, a stronger attack, so never above ``PS``.

    Both inputs are ``[n, C]`` logits of the SAME forget images in the same order (all forget-class
    training images through the unlearned model and through the Retrained model). Symmetric in
    its two arguments. ``PS_exact`` is 0 exactly when some metric separates the two value sets
    completely.
    """
    u = _logits(unlearned_logits, "unlearned_logits")
    r = _logits(retrained_logits, "retrained_logits")
    if u.shape != r.shape:
        raise ValueError(
            f"unlearned_logits {u.shape} and retrained_logits {r.shape} differ: pass the same forget images "
            "(in the same order) through both models"
        )
    if u.shape[0] == 0:
        raise ValueError("no forget images: the privacy score needs at least one")
    # In [0, 1] by construction: attack scores lie in [0, 1] (see attack_scores), and 1 - x stays
    # in [0, 1] in floating point for every x in [0, 1].
    return float(_worst_attacks(feature_values(u), feature_values(r))["exact" if exact else "grid"].privacy_score)


def _worst_attacks(unlearned: Mapping[str, Any], retrained: Mapping[str, Any]) -> dict[str, AttackChoice]:
    """The attacks behind the two stored scores: ``{"grid": PS's, "exact": PS_exact's}``."""
    return {
        "grid": worst_case(unlearned, retrained, PUBLISHED_GRID),
        "exact": worst_case(unlearned, retrained, None, clip=False),
    }


@dataclass(frozen=True)
class Attribution:
    """Per-sample outcome of one threshold attack, aligned with the input arrays.

    ``unlearned_correct[i]`` is True when the attack attributes the unlearned model's value of
    sample ``i`` to the unlearned model (these are the *high-risk* samples: the unlearned model
    still treats them differently from the Retrained model); ``retrained_correct[i]`` likewise for
    the Retrained model's value of sample ``i``. ``*_above`` say whether the clipped value lies at
    or above the threshold.
    """

    metric: str
    direction: str
    threshold: float
    unlearned_values: np.ndarray
    retrained_values: np.ndarray
    unlearned_above: np.ndarray
    retrained_above: np.ndarray

    @property
    def unlearned_correct(self) -> np.ndarray:
        return self.unlearned_above if self.direction == "above_unlearn" else ~self.unlearned_above

    @property
    def retrained_correct(self) -> np.ndarray:
        return ~self.retrained_above if self.direction == "above_unlearn" else self.retrained_above

    @property
    def high_risk(self) -> np.ndarray:
        """Boolean mask ``[n]`` of the high-risk samples (correctly attributed unlearned-model values)."""
        return self.unlearned_correct

    @property
    def success_rate(self) -> float:
        correct = self.unlearned_correct.sum() + self.retrained_correct.sum()
        return float(correct / (self.unlearned_values.size + self.retrained_values.size))

    def to_frame(self, ids: Any = None) -> pd.DataFrame:
        """One row per (sample, model): ``position``, ``id`` (``ids[position]`` or the position),
        ``model`` ("unlearned" | "retrained"), ``value``, ``predicted`` (the model the attack names),
        ``correct``, ``high_risk``. Unlearned-model rows first."""
        n = self.unlearned_values.size
        positions = np.arange(n)
        id_values = positions if ids is None else np.asarray(ids)
        if id_values.shape != (n,):
            raise ValueError(f"ids must hold one id per sample ({n}), got shape {id_values.shape}")
        above_name = "unlearned" if self.direction == "above_unlearn" else "retrained"
        below_name = "retrained" if above_name == "unlearned" else "unlearned"
        above = np.concatenate([self.unlearned_above, self.retrained_above])
        correct = np.concatenate([self.unlearned_correct, self.retrained_correct])
        return pd.DataFrame(
            {
                "position": np.tile(positions, 2),
                "id": np.tile(id_values, 2),
                "model": np.repeat(np.array(["unlearned", "retrained"], dtype=object), n),
                "value": np.concatenate([self.unlearned_values, self.retrained_values]),
                "predicted": np.where(above, above_name, below_name).astype(object),
                "correct": correct,
                "high_risk": np.concatenate([self.high_risk, np.zeros(n, dtype=bool)]),
            }
        )


def attribute_samples(
    unlearned_values: Any, retrained_values: Any, metric: str, threshold: float, direction: str
) -> Attribution:
    """Which samples the attack ``(metric, threshold, direction)`` attributes correctly.

    Uses the same rule as the sweeps (clip into the range, then ``value >= threshold`` means "the
    model named by ``direction``"), so the counts agree with that threshold's FPR / FNR: e.g. for
    ``"above_unlearn"``, ``mean(unlearned_correct) = 1 - FNR`` and ``mean(retrained_correct) = 1 - FPR``.
    """
    _check_metric(metric)
    _check_direction(direction)
    if not isinstance(threshold, (int, float, np.integer, np.floating)) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    u, r = _value_pair(unlearned_values, retrained_values)
    uc, rc = _clip(u, metric), _clip(r, metric)
    return Attribution(metric, direction, float(threshold), u, r, uc >= threshold, rc >= threshold)


# ---------------------------------------------------------------------------------------------
# MIA-Efficacy (SalUn's SVC protocol)


@dataclass(frozen=True)
class MIAReport:
    """The outcome of :func:`mia_report`.

    ``efficacy``: share of forget images the SVC calls non-members (higher = more forgotten).
    ``svc_holdout_accuracy``: accuracy of an SVC fitted on the other part, on a held-out,
    class-balanced part of members and non-members (0.5 = the feature carries no membership
    signal, so the efficacy says little); NaN when ``holdout_share`` is 0.
    Counts: members / non-members used for the final fit, the held-out part of each, forget images.
    """

    efficacy: float
    svc_holdout_accuracy: float
    n_members: int
    n_non_members: int
    n_holdout_per_class: int
    n_forget: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def true_class_probability(source: Any) -> np.ndarray:
    """``softmax(logits)[i, label_i]`` (T = 1) per sample, float64 ``[n]``, computed stably.

    ``source`` is an :class:`~mucomp.evaluation.Evaluation` (anything with ``logits`` and
    ``labels``) or a ``(logits, labels)`` pair.
    """
    if hasattr(source, "logits") and hasattr(source, "labels"):
        logits, labels = source.logits, source.labels
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        logits, labels = source
    else:
        raise ValueError("pass an Evaluation or a (logits, labels) pair")
    z = _logits(logits)
    labels = np.asarray(labels)
    if labels.shape != (z.shape[0],) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"labels must be {z.shape[0]} integers (one per row of logits), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in [0, {z.shape[1] - 1}]")
    if z.shape[0] == 0:
        return np.zeros(0)
    return softmax(z)[np.arange(z.shape[0]), labels]


def _svc():
    from sklearn.svm import SVC

    return SVC(C=3.0, kernel="rbf", gamma="auto")


def mia_report(
    model_eval_retain: Any,
    model_eval_test: Any,
    model_eval_forget: Any,
    *,
    seed: int = 0,
    holdout_share: float = 0.2,
) -> MIAReport:
    """MIA-Efficacy of one model by SalUn's protocol, with a check of the attack's own accuracy.

    Parameters
    ----------
    model_eval_retain:
        The model's outputs on the *members*: retain training images (an Evaluation or
        ``(logits, labels)``), e.g. ``train_eval.select(scenario.mia_indices[0])``.
    model_eval_test:
        The model's outputs on the *non-members*: test-retain images, e.g.
        ``test_eval.select(scenario.mia_indices[1])``.
    model_eval_forget:
        The model's outputs on the forget images (``train_eval.select(scenario.forget_indices)``).
    seed:
        The experiment seed; drives the balancing and the held-out split.
    holdout_share:
        Share of each class held out to measure the SVC's accuracy, in ``[0, 0.5]``; 0 skips it.

    Feature: the true-class probability (T = 1). Members and non-members are balanced to equal
    counts (the larger side subsampled, seeded) if they are not already. The efficacy comes from an
    RBF SVC (C = 3, gamma = "auto") fitted on ALL members and non-members, exactly as SalUn; the
    held-out accuracy from a second SVC fitted on the other ``1 - holdout_share`` of each class.
    """
    from mucomp.data import seeded_rng

    if not 0.0 <= float(holdout_share) <= 0.5:
        raise ValueError(f"holdout_share must lie in [0, 0.5], got {holdout_share!r}")
    members = true_class_probability(model_eval_retain)
    non_members = true_class_probability(model_eval_test)
    forget = true_class_probability(model_eval_forget)
    if members.size == 0 or non_members.size == 0:
        raise ValueError("MIA-Efficacy needs members (retain train) and non-members (test-retain); one set is empty")
    if forget.size == 0:
        raise ValueError("MIA-Efficacy needs at least one forget image")
    count = min(members.size, non_members.size)
    if members.size != non_members.size:
        rng = seeded_rng(seed, "mia-balance")
        if members.size > count:
            members = members[np.sort(rng.choice(members.size, count, replace=False))]
        else:
            non_members = non_members[np.sort(rng.choice(non_members.size, count, replace=False))]

    x = np.concatenate([members, non_members])[:, None]
    y = np.concatenate([np.ones(count), np.zeros(count)])
    clf = _svc().fit(x, y)
    efficacy = float(np.mean(clf.predict(forget[:, None]) == 0))

    held = int(round(holdout_share * count))
    accuracy = float("nan")
    if held > 0:  # holdout_share <= 0.5 leaves at least one sample per class to fit on
        rng = seeded_rng(seed, "mia-holdout")
        is_held = np.zeros(2 * count, dtype=bool)
        is_held[rng.choice(count, held, replace=False)] = True
        is_held[count + rng.choice(count, held, replace=False)] = True
        check = _svc().fit(x[~is_held], y[~is_held])
        accuracy = float(np.mean(check.predict(x[is_held]) == y[is_held]))
    return MIAReport(efficacy, accuracy, count, count, held, int(forget.size))


def mia_efficacy(model_eval_retain: Any, model_eval_test: Any, model_eval_forget: Any, *, seed: int = 0) -> float:
    """MIA-Efficacy in ``[0, 1]``: share of forget images SalUn's SVC calls non-members.

    The contract form of :func:`mia_report` (same inputs; skips the held-out check).
    """
    return mia_report(model_eval_retain, model_eval_test, model_eval_forget, seed=seed, holdout_share=0.0).efficacy


# ---------------------------------------------------------------------------------------------
# Scenario-level wiring


def scenario_mia_report(
    scenario: Scenario, train_eval: Evaluation, test_eval: Evaluation, *, holdout_share: float = 0.2
) -> MIAReport:
    """:func:`mia_report` on a scenario's fixed subsets, from whole-split evaluations of one model."""
    members, non_members = scenario.mia_indices
    return mia_report(
        train_eval.select(members),
        test_eval.select(non_members),
        train_eval.select(scenario.forget_indices),
        seed=scenario.train_seed,
        holdout_share=holdout_share,
    )


def forget_logits(scenario: Scenario, train_eval: Evaluation) -> np.ndarray:
    """Logits ``[n_forget, C]`` of every forget-class training image, in ``scenario.forget_indices`` order."""
    return train_eval.select(scenario.forget_indices).logits


def forget_feature_values(scenario: Scenario, train_eval: Evaluation) -> dict[str, np.ndarray]:
    """:func:`feature_values` of :func:`forget_logits`: one model's attack values on the forget images."""
    return feature_values(forget_logits(scenario, train_eval))


def privacy_metrics(
    scenario: Scenario,
    train_eval: Evaluation,
    test_eval: Evaluation,
    retrained_train_eval: Evaluation | None,
    *,
    holdout_share: float = 0.2,
    values: Mapping[str, Any] | None = None,
    retrained_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The privacy figures of one model, with the CLI's metric keys.

    ``train_eval`` / ``test_eval``: the model's whole-split evaluations; ``retrained_train_eval``:
    the Retrained model's train-split evaluation. ``values`` / ``retrained_values``: the two
    models' attack values on the forget images (:func:`forget_feature_values`) when the caller
    has them already; each one given is used instead of recomputing it from the evaluation
    (``retrained_train_eval`` may then be ``None``). Returns ``{"PS": float, "PS_exact": float,
    "MIA_efficacy": float, "MIA_svc_accuracy": float, "PS_worst_case": ..., "PS_exact_worst_case":
    ...}``, the last two the :meth:`AttackChoice.as_dict` of the attack behind each score.
    """
    if values is None:
        values = forget_feature_values(scenario, train_eval)
    if retrained_values is None:
        if retrained_train_eval is None:
            raise ValueError("pass retrained_train_eval or retrained_values (the Retrained model's attack values)")
        retrained_values = forget_feature_values(scenario, retrained_train_eval)
    worst = _worst_attacks(values, retrained_values)
    report = scenario_mia_report(scenario, train_eval, test_eval, holdout_share=holdout_share)
    return {
        "PS": float(worst["grid"].privacy_score),  # in [0, 1]: see privacy_score
        "PS_exact": float(worst["exact"].privacy_score),
        "MIA_efficacy": report.efficacy,
        "MIA_svc_accuracy": report.svc_holdout_accuracy,
        "PS_worst_case": worst["grid"].as_dict(),
        "PS_exact_worst_case": worst["exact"].as_dict(),
    }
