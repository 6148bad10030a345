"""Threshold strategies (the Attack page) and per-sample attribution, on the sweeps of
:mod:`mucomp.privacy.attack`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mucomp.privacy.attack import (
    DEFAULT_THRESHOLDS,
    DIRECTIONS,
    METRICS,
    PUBLISHED_GRID,
    candidate_thresholds,
    check_direction,
    check_metric,
    clip_values,
    feature_values,
    logits_array,
    sweep_curve,
    value_pair,
)

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
    check_metric(metric)
    u, r = value_pair(unlearned_values, retrained_values)
    if n_thresholds is not None and not clip:
        raise ValueError("the grid spans the clipped display range; clip=False needs the exact search")
    thresholds = candidate_thresholds(u, r, metric, n_thresholds, clip=clip)
    if clip:
        u, r = clip_values(u, metric), clip_values(r, metric)
    curve = sweep_curve(u, r, thresholds)
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
    check_metric(metric)
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[metric]
    if not isinstance(threshold, (int, float, np.integer, np.floating)) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    u, r = value_pair(unlearned_values, retrained_values)
    thresholds = np.array([float(threshold)])
    curve = sweep_curve(clip_values(u, metric), clip_values(r, metric), thresholds)
    if direction is None:
        d, _ = _argbest(curve["attack_score"], curve["success_rate"])
    else:
        d = DIRECTIONS.index(check_direction(direction))
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
    check_metric(metric)
    a, r = value_pair(unlearned_a, retrained_values)
    b, _ = value_pair(unlearned_b, retrained_values)
    thresholds = candidate_thresholds(a, r, metric, n_thresholds, b)
    rc = clip_values(r, metric)
    curves = [sweep_curve(clip_values(a, metric), rc, thresholds), sweep_curve(clip_values(b, metric), rc, thresholds)]
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
    return feature_values(logits_array(values, name))


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
    u = logits_array(unlearned_logits, "unlearned_logits")
    r = logits_array(retrained_logits, "retrained_logits")
    if u.shape != r.shape:
        raise ValueError(
            f"unlearned_logits {u.shape} and retrained_logits {r.shape} differ: pass the same forget images "
            "(in the same order) through both models"
        )
    if u.shape[0] == 0:
        raise ValueError("no forget images: the privacy score needs at least one")
    # In [0, 1] by construction: attack scores lie in [0, 1] (see attack_scores), and 1 - x stays
    # in [0, 1] in floating point for every x in [0, 1].
    return float(worst_attacks(feature_values(u), feature_values(r))["exact" if exact else "grid"].privacy_score)


def worst_attacks(unlearned: Mapping[str, Any], retrained: Mapping[str, Any]) -> dict[str, AttackChoice]:
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
    check_metric(metric)
    check_direction(direction)
    if not isinstance(threshold, (int, float, np.integer, np.floating)) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    u, r = value_pair(unlearned_values, retrained_values)
    uc, rc = clip_values(u, metric), clip_values(r, metric)
    return Attribution(metric, direction, float(threshold), u, r, uc >= threshold, rc >= threshold)
