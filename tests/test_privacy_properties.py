"""Property tests (hypothesis) of the privacy functions over random inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mucomp import privacy as P

FAST = settings(max_examples=60, deadline=None)

any_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
moderate = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False)
rate = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def logit_pairs(draw, elements=moderate):
    """Two ``[n, C]`` logit arrays of the same shape (n >= 1; C >= 1)."""
    n = draw(st.integers(1, 12))
    c = draw(st.integers(1, 6))
    shape = (n, c)
    return draw(hnp.arrays(np.float64, shape, elements=elements)), draw(
        hnp.arrays(np.float64, shape, elements=elements)
    )


@st.composite
def value_pairs(draw):
    """Two equal-length 1-D value arrays, often with ties and constant runs."""
    n = draw(st.integers(1, 30))
    pool = st.sampled_from([0.0, 0.15, 0.5, 1.0, 2.5, 3.0, -3.0, 10.0, 12.0]) | st.floats(-20, 20, allow_nan=False)
    return (
        draw(hnp.arrays(np.float64, n, elements=pool)),
        draw(hnp.arrays(np.float64, n, elements=pool)),
    )


@FAST
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8), elements=any_finite))
def test_features_are_finite_for_any_finite_logits(z):
    entropy, logodds = P.attack_features(z)
    assert entropy.shape == logodds.shape == (z.shape[0],)
    assert np.isfinite(entropy).all() and np.isfinite(logodds).all()
    assert (entropy >= 0).all() and (entropy <= np.log(z.shape[1]) + 1e-12).all()
    if z.shape[1] >= 2:
        assert (logodds >= -np.log(z.shape[1] - 1) - 1e-9).all()


@FAST
@given(rate, rate)
def test_attack_score_in_unit_interval_and_symmetric(fpr, fnr):
    score = P.attack_score(fpr, fnr)
    assert 0.0 <= score <= 1.0
    assert score == P.attack_score(fnr, fpr)
    if fpr + fnr >= 1.0:
        assert score == 0.0


@FAST
@given(value_pairs(), st.sampled_from(P.METRICS), st.integers(2, 60))
def test_sweeps_are_bounded_and_nan_free(pair, metric, n_thresholds):
    u, r = pair
    for df in (P.threshold_sweep(u, r, metric, n_thresholds), P.threshold_sweep_exact(u, r, metric)):
        numbers = df[["threshold", "fpr", "fnr", "attack_score"]].to_numpy()
        assert np.isfinite(numbers).all()
        assert ((df[["fpr", "fnr", "attack_score"]] >= 0) & (df[["fpr", "fnr", "attack_score"]] <= 1)).all().all()
    grid = P.threshold_sweep(u, r, metric, n_thresholds)
    exact = P.threshold_sweep_exact(u, r, metric)
    assert exact["attack_score"].max() >= grid["attack_score"].max()


@FAST
@given(value_pairs(), st.sampled_from(P.METRICS))
def test_two_direction_maximum_is_symmetric(pair, metric):
    u, r = pair
    forward = P.threshold_sweep_exact(u, r, metric)
    backward = P.threshold_sweep_exact(r, u, metric)
    assert forward["attack_score"].max() == backward["attack_score"].max()
    grid_f = P.threshold_sweep(u, r, metric).set_index(["direction", "threshold"])
    grid_b = P.threshold_sweep(r, u, metric).set_index(["direction", "threshold"])
    swapped = grid_b.rename(index={"above_unlearn": "above_retrain", "above_retrain": "above_unlearn"}, level=0)
    assert np.array_equal(grid_f.sort_index()["attack_score"], swapped.sort_index()["attack_score"])


@FAST
@given(logit_pairs())
def test_privacy_score_bounded_symmetric_and_one_against_itself(pair):
    u, r = pair
    score = P.privacy_score(u, r)
    assert 0.0 <= score <= 1.0
    assert score == P.privacy_score(r, u)
    assert P.privacy_score(u, u) == 1.0
    exact = P.privacy_score(u, r, exact=True)
    assert 0.0 <= exact <= score  # every grid threshold's rates are reached by a raw-value threshold
    assert exact == P.privacy_score(r, u, exact=True)


@FAST
@given(logit_pairs(elements=any_finite))
def test_privacy_score_never_nan_for_extreme_logits(pair):
    u, r = pair
    assert 0.0 <= P.privacy_score(u, r) <= 1.0


@FAST
@given(value_pairs(), st.sampled_from(P.METRICS))
def test_strategies_and_attribution_are_consistent(pair, metric):
    u, r = pair
    best = P.max_attack_score(u, r, metric)
    success = P.max_success_rate(u, r, metric)
    assert 0.0 <= best.attack_score <= 1.0 and 0.5 <= success.success_rate <= 1.0
    assert success.success_rate >= best.success_rate
    for choice in (best, success, P.custom_threshold(u, r, metric)):
        att = P.attribute_samples(u, r, metric, choice.threshold, choice.direction)
        assert att.success_rate == choice.success_rate or abs(att.success_rate - choice.success_rate) < 1e-12
    a, b = P.common_threshold(u, r, r, metric)
    assert a.threshold == b.threshold and b.attack_score == 0.0
