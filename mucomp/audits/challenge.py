"""Many-model evaluation: the NeurIPS-2023 unlearning challenge's forgetting quality F and
EasyDUB's KLoM, as pure functions on per-model, per-example scores (numpy only).

Both compare, **example by example**, how a forget image's score is distributed over N unlearned
models (one method configuration, unlearning seeds, one Original) with how it is distributed over
N models retrained without the forget set (training seeds). Sources (read at the commits named in
docs/definitions.md, "Many-model evaluation: forgetting quality and KLoM"):

- F: google-deepmind/unlearning_evaluation ``metric.py`` (``compute_logit_scaled_confidence``
  l. 29-61, ``_get_double_threshold_rates`` l. 64-129, ``_get_single_threshold_rates`` l. 132-162,
  ``_get_epsilons`` l. 165-301, ``compute_forget_score_from_confs`` l. 304-349) and ``main.py``
  (the final score, l. 292-337).
- KLoM: easydub/EasyDUB-code ``easydub/eval.py`` (``binned_kl_divergence`` l. 11-47,
  ``klom_from_margins`` l. 50-75), the margin of ``train_models.py`` ``compute_margins_multi``
  (l. 177-202; the margin l. 196-200) and the 95th percentile of ``eval_pretrain.py`` l. 49.

Per example, the challenge's ε is the largest (ε, δ = 1e-5) privacy loss a decision rule of two
families reaches on the two empirical distributions: one threshold (100 per confidence unit across
both sets) and two thresholds (a window around the peakier set, ±2.0 buffer). The released code
evaluates every rule on a dense grid on the GPU; :func:`challenge_epsilons` gets the same maximum
without materialising the grids: a rule's rates only depend on which confidences it separates, so
it locates each confidence on each grid (exactly, with numpy's ``linspace`` arithmetic) and
evaluates only the distinct count pairs the grid achieves. Where mucomp differs from the released
code (the float precision, and an assertion that cannot run) is listed in the definitions document.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mucomp.audits.ulira import phi

# metric.py l. 24-26 and the constants inside its functions.
DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
#: The double-threshold family's buffer around the peakier set (metric.py l. 77).
BUFFER = 2.0
#: Below this ratio of the smaller to the larger range, ε = EPSILON_CAP (metric.py l. 188).
PEAKY_RATIO = 0.01
#: Width of the score's ε buckets (metric.py l. 331).
BUCKET_WIDTH = 0.5
#: Added to both probabilities before the logs of the logit-scaled confidence (metric.py l. 57).
CONFIDENCE_FLOOR = 1e-45
# easydub/eval.py l. 14-17 and l. 53-54.
KLOM_BINS = 20
KLOM_EPS = 1e-5
KLOM_CLIP = 100.0
#: The percentile EasyDUB reports per split (eval_pretrain.py l. 49).
KLOM_PERCENTILE = 95.0


# ---------------------------------------------------------------------------------------------
# Per-model scores from logits


def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """The challenge's logit-scaled confidence per example, float64 ``[n]``.

    ``logits``: ``[n, C]`` (one model); ``labels``: ``[n]`` true classes y. With p = softmax(z):
    ``log(p_y + 1e-45) − log(Σ_{j≠y} p_j + 1e-45)`` (metric.py l. 57), computed in log space
    (``log p_y = z_y − logsumexp z``), so it equals ``z_y − logsumexp_{j≠y} z_j`` to float64
    rounding while that is within about ±69, and the 1e-45 floor bends it beyond, bounding it by
    ln(1e45) ≈ ±103.6 as in the released code (which exponentiates after subtracting the row max).
    """
    z = np.asarray(logits, dtype=np.float64)
    phi(z, labels, kind="logits")  # the shared validation of logits and labels
    n = z.shape[0]
    if n == 0:
        return np.zeros(0)
    y = np.asarray(labels)
    rows = np.arange(n)
    top = z.max(axis=1, keepdims=True)
    log_total = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    others = np.ones_like(z, dtype=bool)
    others[rows, y] = False
    other = z[others].reshape(n, -1)
    top_other = other.max(axis=1, keepdims=True)
    log_rest = top_other[:, 0] + np.log(np.exp(other - top_other).sum(axis=1)) - log_total
    log_floor = math.log(CONFIDENCE_FLOOR)
    return np.logaddexp(z[rows, y] - log_total, log_floor) - np.logaddexp(log_rest, log_floor)


def margin(logits: Any, labels: Any) -> np.ndarray:
    """KLoM's margin per example, float64 ``[n]``: ``z_y − logsumexp_{j≠y} z_j`` (EasyDUB
    ``train_models.py`` l. 196-200), **not** clipped: EasyDUB clips to ±100 inside the KL
    (``eval.py`` l. 24-25), and so does :func:`klom`. ``logits`` ``[n, C]``, ``labels`` ``[n]``."""
    return phi(logits, labels, kind="logits")


# ---------------------------------------------------------------------------------------------
# Forgetting quality F


def _ensemble_pair(unlearned: Any, retrained: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    for array, name in zip((u, r), names, strict=True):
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(f"{name} must be [N, n] (N models, n examples, both >= 1), got shape {array.shape}")
    if u.shape != r.shape:
        # The sources pair the two sets column by column and take N from one side
        # (metric.py l. 320-326, eval.py l. 61): both sides need the same N and n.
        raise ValueError(f"{names[0]} {u.shape} and {names[1]} {r.shape} must have the same shape [N, n]: "
                         "as many models on each side, the same examples in the same order")
    return u, r


def _rule_epsilons(n_models: int) -> np.ndarray:
    """ε of a rule by its counts, ``[N + 1, N + 1]``: entry ``[a, b]`` for a rule that predicts
    "positive" for ``a`` of the N negative and ``b`` of the N positive models (metric.py l. 220-269).

    inf where it separates the sets (FPR = FNR = 0), NaN (discarded) where exactly one of FPR and
    FNR is 0 ("an indication of insufficient samples") or where both logs are undefined.
    """
    a = np.arange(n_models + 1, dtype=np.float64)[:, None]
    b = np.arange(n_models + 1, dtype=np.float64)[None, :]
    fpr = a / n_models
    fnr = (n_models - b) / n_models
    with np.errstate(divide="ignore", invalid="ignore"):
        # np.fmax skips a NaN operand as the source's nanmax over the two directions does.
        eps = np.fmax(np.log(1 - DELTA - fpr) - np.log(fnr), np.log(1 - DELTA - fnr) - np.log(fpr))
    eps = np.clip(eps, 0.0, None)  # NaN stays NaN
    eps[(fpr == 0) != (fnr == 0)] = np.nan
    eps[(fpr == 0) & (fnr == 0)] = np.inf
    return eps


def _linspace_point(k: np.ndarray, start: np.ndarray, stop: np.ndarray, step: np.ndarray,
                    num: np.ndarray) -> np.ndarray:
    """The k-th point of ``np.linspace(start, stop, num)`` as numpy computes it: ``k * step +
    start`` in float64, the last one ``stop``."""
    return np.where((k >= num - 1) & (num > 1), stop, k * step + start)


def _grid_count_le(values: np.ndarray, start: np.ndarray, stop: np.ndarray, num: np.ndarray) -> np.ndarray:
    """How many points of ``np.linspace(start, stop, num)`` are <= each value (all broadcasting;
    ``num`` may differ per row, 0 and 1 included).

    Exact at ties: ``floor((value − start) / step) + 1`` is right unless the quotient lies within
    rounding of a whole number; those entries (and grids of fewer than two points) are counted
    against the points themselves (:func:`_linspace_point`). Returns float64 counts.
    """
    step = (stop - start) / np.maximum(num - 1, 1)
    usable = (num >= 2) & (step > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        fraction, count = np.modf((values - start) / step)
        # Far above float64 rounding of every term (in steps) and of the last point's offset.
        scale = np.abs(values).max(axis=-1, keepdims=True) + np.abs(start) + np.abs(stop)
        tolerance = 1e-14 * (scale / step + num)
        # |fraction − ½| >= ½ − tolerance: within the tolerance of a whole number (in place).
        np.abs(np.subtract(fraction, 0.5, out=fraction), out=fraction)
        unsure = (fraction >= 0.5 - tolerance) | ~usable
    count += 1
    np.clip(count, 0, num, out=count)
    if not usable.all():
        count[np.broadcast_to(~usable, count.shape)] = 0  # counted exactly below
    subset = np.nonzero(unsure)
    args = [np.broadcast_to(x, count.shape) for x in (values, start, stop, step, num)]
    while subset[0].size:
        value, first, last, spacing, size = [x[subset] for x in args]
        current = count[subset]
        up = (current < size) & (_linspace_point(np.minimum(current, size - 1), first, last, spacing, size) <= value)
        down = (current > 0) & (_linspace_point(np.maximum(current - 1, 0), first, last, spacing, size) > value)
        moved = up | down
        count[subset] = current + up - down
        subset = tuple(index[moved] for index in subset)
    return count


def _nanmax_rows(values: np.ndarray) -> np.ndarray:
    """Row maxima ignoring NaN (NaN where a row has none), without numpy's all-NaN warning."""
    return np.fmax.reduce(values.reshape(values.shape[0], -1), axis=1)


def _single_threshold(ordered: np.ndarray, from_pos: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Largest ε of the single-threshold rules per example (metric.py l. 132-162), NaN if none.

    "Positive" at or above t, for ``ceil(100 × range)`` thresholds t from the smallest to the
    largest value of both sets. The models a threshold calls positive are a suffix of the sorted
    values; a suffix starts where a threshold falls between two neighbours (and at 0: the first
    threshold is the minimum itself).
    """
    n_models = from_pos.shape[1] // 2
    low, high = ordered[:, :1], ordered[:, -1:]
    num = np.ceil((high - low) * THRESHOLDS_PER_UNIT).astype(np.int64)
    count = _grid_count_le(ordered, low, high, num)
    starts = np.concatenate([num >= 1, count[:, 1:] > count[:, :-1]], axis=1)
    above_pos = n_models - np.cumsum(from_pos, axis=1) + from_pos  # positives at or after each position
    above_neg = n_models - np.cumsum(~from_pos, axis=1) + ~from_pos
    return _nanmax_rows(np.where(starts, table[above_neg, above_pos], np.nan))


def _double_threshold(ordered: np.ndarray, from_pos: np.ndarray, pos: np.ndarray, neg: np.ndarray,
                      table: np.ndarray) -> np.ndarray:
    """Largest ε of the double-threshold rules per example (metric.py l. 64-129), NaN if none.

    "Positive" inside [left, right], the peakier set (smaller range; ties: the negative set) being
    the positive one; width = its range: ``ceil(100 × 4)`` right thresholds (400, or 401 by
    rounding) from (its minimum + width) − 2 to its maximum + 2, and for each 400 left thresholds
    from right − width − 2 to right − width + 2. Values <= right are a prefix of the sorted
    values, values >= left a suffix: a window holds the values from a suffix start (as in
    :func:`_single_threshold`, per right threshold) to the end of the prefix.
    """
    n_values = ordered.shape[1]
    pos_range, neg_range = np.ptp(pos, axis=1), np.ptp(neg, axis=1)
    swap = pos_range >= neg_range
    from_peaky = np.where(swap[:, None], ~from_pos, from_pos)
    width = np.where(pos_range > neg_range, neg_range, pos_range)[:, None]
    low = (np.where(swap, neg.min(axis=1), pos.min(axis=1))[:, None] + width) - BUFFER
    high = np.where(swap, neg.max(axis=1), pos.max(axis=1))[:, None] + BUFFER
    num = np.ceil((high - low) * THRESHOLDS_PER_UNIT).astype(np.int64)
    k = np.arange(num.max(), dtype=np.float64)[None, :]
    rights = np.where(k >= num - 1, high, k * ((high - low) / (num - 1)) + low)  # np.linspace's points
    end = np.stack([np.searchsorted(row, right, side="right") for row, right in zip(ordered, rights, strict=True)])
    end[np.broadcast_to(k >= num, end.shape)] = 0  # padding rows (400 where others have 401): no window
    base = (rights - width)[:, :, None]
    lefts = _grid_count_le(ordered[:, None, :], base - BUFFER, base + BUFFER,
                           np.int64(np.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)))
    starts = np.empty(lefts.shape, dtype=bool)
    np.greater_equal(lefts[:, :, :1], 1, out=starts[:, :, :1])
    np.greater(lefts[:, :, 1:], lefts[:, :, :-1], out=starts[:, :, 1:])
    starts &= np.arange(n_values) < end[:, :, None]  # a start inside the prefix: a non-empty window
    # Counts before each position, coded as the flat index of the table: other * (N + 1) + peaky;
    # the entry after the table is NaN, for the (row, start) pairs that are no window.
    cum_peaky = np.concatenate([np.zeros((len(ordered), 1), np.int64), np.cumsum(from_peaky, axis=1)], axis=1)
    code = (np.arange(n_values + 1)[None, :] - cum_peaky) * table.shape[1] + cum_peaky
    held = np.where(starts, np.take_along_axis(code, end, axis=1)[:, :, None] - code[:, None, :-1], table.size)
    return _nanmax_rows(np.append(table.ravel(), np.nan).take(held))


def _epsilons(pos: np.ndarray, neg: np.ndarray, table: np.ndarray) -> np.ndarray:
    """ε per example of ``pos`` / ``neg`` ``[m, N]`` (metric.py ``_get_epsilons`` l. 165-301)."""
    n_models = pos.shape[1]
    pos_range, neg_range = np.ptp(pos, axis=1), np.ptp(neg, axis=1)
    largest, smallest = np.maximum(pos_range, neg_range), np.minimum(pos_range, neg_range)
    with np.errstate(invalid="ignore", divide="ignore"):
        peaky = smallest / largest < PEAKY_RATIO  # both ranges 0: 0/0 = NaN skips the guard, as there
    values = np.concatenate([pos, neg], axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    from_pos = order < n_models
    best = np.fmax(_single_threshold(ordered, from_pos, table), _double_threshold(ordered, from_pos, pos, neg, table))
    # No surviving rule: the released code asserts (metric.py l. 285). It happens when both sets
    # are constants: the same one (nothing tells them apart, 0), or two closer than the grids'
    # spacing, which the released float32 run separates (50, the cap of a perfect rule).
    apart = (pos.min(axis=1) > neg.max(axis=1)) | (neg.min(axis=1) > pos.max(axis=1))
    eps = np.where(np.isnan(best), np.where(apart, EPSILON_CAP, 0.0), np.clip(best, 0.0, EPSILON_CAP))
    return np.where(peaky, EPSILON_CAP, eps)


def challenge_epsilons(unlearned_confs: Any, retrained_confs: Any) -> np.ndarray:
    """The challenge's per-example ε, float64 ``[n]`` in [0, 50] (metric.py ``_get_epsilons``).

    ``unlearned_confs`` / ``retrained_confs``: ``[N, n]`` logit-scaled confidences
    (:func:`logit_scaled_confidence`) of the n forget examples under N unlearned and N retrained
    models (the same N on both sides). Per example: the positive set is the one with the larger
    median (ties: the unlearned); if the smaller range is below 1 % of the larger, ε = 50;
    otherwise the largest ε over the single- and double-threshold rules (:func:`_rule_epsilons`),
    inf (so 50) when one separates the sets; when no rule survives (constant sets), 50 if the sets
    are apart and 0 if they are the same value. 0 = indistinguishable.
    """
    u, r = _ensemble_pair(unlearned_confs, retrained_confs, ("unlearned_confs", "retrained_confs"))
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise ValueError("confidences must be finite")
    retrained_positive = np.median(r, axis=0) > np.median(u, axis=0)
    pos = np.where(retrained_positive, r, u).T
    neg = np.where(retrained_positive, u, r).T
    table = _rule_epsilons(u.shape[0])
    # Chunks keep the [examples, ~401 right thresholds, 2N values] arrays near 1.6 MB each, which
    # measured twice as fast as 4 MB (memory-bound passes) and no slower than 0.8 MB.
    chunk = max(1, 200_000 // (401 * 2 * u.shape[0]))
    return np.concatenate([_epsilons(pos[i:i + chunk], neg[i:i + chunk], table) for i in range(0, len(pos), chunk)])


def _bucket_count(n_models: int) -> tuple[float, int]:
    if int(n_models) != n_models or n_models < 2:
        raise ValueError(f"n_models must be an integer >= 2 (the bucketing uses ln(N - 1)), got {n_models}")
    max_epsilon = float(np.ceil(np.log(int(n_models) - 1)))
    buckets, start = 0, 0.0
    while start + BUCKET_WIDTH <= max_epsilon:  # metric.py l. 335-339
        buckets += 1
        start += BUCKET_WIDTH
    return max_epsilon, buckets


def epsilon_resolution(n_models: int) -> dict[str, Any]:
    """The ε the challenge's bucketing resolves with N models per side: ``{"max_epsilon":
    ceil(ln(N − 1)), "buckets": its number of 0.5-wide buckets}`` (metric.py l. 326-339).
    N = 512: 7 in 14 buckets; 64: 5 in 10; 32: 4 in 8; 16: 3 in 6; 8: 2 in 4; 2: none (F = 0)."""
    max_epsilon, buckets = _bucket_count(n_models)
    return {"max_epsilon": max_epsilon, "buckets": buckets}


def example_points(epsilons: Any, n_models: int) -> np.ndarray:
    """Each example's points, float64 ``[n]``: 2^-k for ε in bucket k = [k/2, (k+1)/2), 0 at or
    beyond ceil(ln(N − 1)) (metric.py l. 328-346). ``epsilons``: ``[n]``; ``n_models``: N."""
    eps = np.asarray(epsilons, dtype=np.float64)
    if eps.ndim != 1 or np.isnan(eps).any():
        raise ValueError(f"epsilons must be [n] without NaN, got shape {eps.shape}")
    _, buckets = _bucket_count(n_models)
    with np.errstate(invalid="ignore"):
        bucket = np.maximum(np.floor(np.where(np.isinf(eps), np.inf, eps / BUCKET_WIDTH)), 0.0)
    points = np.zeros(eps.shape)
    inside = bucket < buckets
    points[inside] = 2.0 ** -bucket[inside]
    return points


def forget_quality(unlearned_confs: Any, retrained_confs: Any) -> float:
    """The challenge's forgetting quality F in [0, 1]: the mean over the forget set of
    :func:`example_points` of :func:`challenge_epsilons` (metric.py
    ``compute_forget_score_from_confs``). 1 = every example as if retrained. Needs N >= 2 models
    per side; N = 2 has no bucket and scores 0 (:func:`epsilon_resolution`)."""
    u, r = _ensemble_pair(unlearned_confs, retrained_confs, ("unlearned_confs", "retrained_confs"))
    _bucket_count(u.shape[0])
    points = example_points(challenge_epsilons(u, r), u.shape[0])
    # Dyadic points add exactly in any order: the same float as the source's running sum.
    return float(points.sum() / u.shape[1])


def _mean_accuracy(value: Any, name: str) -> float:
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0 or array.ndim > 1 or not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} must be one accuracy or a list of per-model accuracies (finite, >= 0)")
    return float(np.mean(array))


def challenge_score(forget_quality: float, unlearned_retain_acc: Any, retrained_retain_acc: Any,
                    unlearned_test_acc: Any, retrained_test_acc: Any) -> float:
    """The challenge's final score: F × (mean retain accuracy of the unlearned models / of the
    retrained ones) × (the same for test accuracy) (main.py l. 292-337).

    Each accuracy is one number or the per-model list (its mean is used, as the challenge does);
    fractions or percentages, the same unit on both sides of a ratio.
    """
    quality = float(forget_quality)
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"forget_quality must lie in [0, 1], got {forget_quality}")
    u_r = _mean_accuracy(unlearned_retain_acc, "unlearned_retain_acc")
    r_r = _mean_accuracy(retrained_retain_acc, "retrained_retain_acc")
    u_t = _mean_accuracy(unlearned_test_acc, "unlearned_test_acc")
    r_t = _mean_accuracy(retrained_test_acc, "retrained_test_acc")
    if r_r == 0 or r_t == 0:
        raise ValueError("the retrained models' mean retain and test accuracies must be > 0")
    return quality * (u_r / r_r) * (u_t / r_t)


# ---------------------------------------------------------------------------------------------
# KLoM


def _bin_counts(samples: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.digitize`` per row into bins 1..B (a value equal to the last edge falls outside, as
    in the source); ``samples`` ``[n, N]``, ``edges`` ``[n, B + 1]`` -> counts ``[n, B]``."""
    index = (edges[:, None, :] <= samples[:, :, None]).sum(axis=2)  # digitize = searchsorted right
    width = edges.shape[1] + 1
    flat = index + width * np.arange(samples.shape[0])[:, None]
    return np.bincount(flat.ravel(), minlength=width * samples.shape[0]).reshape(-1, width)[:, 1:-1]


def klom(unlearned_margins: Any, retrained_margins: Any) -> np.ndarray:
    """KLoM per example, float64 ``[n]`` (EasyDUB ``klom_from_margins`` / ``binned_kl_divergence``).

    ``unlearned_margins`` / ``retrained_margins``: ``[N, n]`` margins (:func:`margin`) of n
    examples under N unlearned and N retrained models. Per example: both sets clipped to ±100;
    20 equal bins from the smaller minimum to the larger maximum of the two (one unit wide when
    they coincide); KL(unlearned ‖ retrained) of the two histograms, each normalised by the values
    it counts, with 1e-5 for a retrained bin that is empty where the unlearned one is not.
    0 = the same histogram; about ln(1e5) ≈ 11.5 = disjoint.
    """
    u, r = _ensemble_pair(unlearned_margins, retrained_margins, ("unlearned_margins", "retrained_margins"))
    if np.isnan(u).any() or np.isnan(r).any():
        raise ValueError("margins must not be NaN")
    values = np.empty(u.shape[1])
    for first in range(0, u.shape[1], 2048):  # bounds the [chunk, N, 21] comparison
        p = np.clip(u[:, first:first + 2048], -KLOM_CLIP, KLOM_CLIP).T
        q = np.clip(r[:, first:first + 2048], -KLOM_CLIP, KLOM_CLIP).T
        low = np.minimum(p.min(axis=1), q.min(axis=1))
        high = np.maximum(p.max(axis=1), q.max(axis=1))
        high = np.where(low >= high, low + 1.0, high)
        edges = np.linspace(low, high, KLOM_BINS + 1, axis=1)
        p_counts, q_counts = _bin_counts(p, edges), _bin_counts(q, edges)
        p_total = p_counts.sum(axis=1, keepdims=True)
        q_total = q_counts.sum(axis=1, keepdims=True)
        p_probs = np.divide(p_counts, p_total, out=np.zeros(p_counts.shape), where=p_total > 0)
        q_probs = np.divide(q_counts, q_total, out=np.zeros(q_counts.shape), where=q_total > 0)
        q_safe = np.where(p_probs > 0, np.maximum(q_probs, KLOM_EPS), q_probs)
        ratio = np.divide(p_probs, q_safe, out=np.ones(p_probs.shape), where=p_probs > 0)
        values[first:first + 2048] = np.sum(p_probs * np.log(ratio), axis=1)
    return values


def klom_p95(values: Any) -> float:
    """The 95th percentile of per-example KLoM values ``[n]`` (numpy's linear interpolation), the
    figure EasyDUB reports per split (``eval_pretrain.py`` l. 49)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or np.isnan(array).any():
        raise ValueError(f"values must be a non-empty [n] array without NaN, got shape {array.shape}")
    return float(np.percentile(array, KLOM_PERCENTILE))
