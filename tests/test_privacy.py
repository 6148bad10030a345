"""Privacy audit: attack features, sweeps, attack score, privacy score, strategies, MIA-Efficacy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mucomp import privacy as P

FIXTURE = Path(__file__).parent / "data" / "comparator_cifar10_class3"
SHARED_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "comparator_cifar10_class3"
FILES = ("original_0003.json", "retrained_a003.json")


# ---------------------------------------------------------------------------------------------
# The published system's stored curves


@pytest.fixture(scope="module")
def published():
    """{"original": attack dict, "retrained": attack dict, "values": {name: {metric: [200]}}},
    the Retrained values re-ordered to the Original's images (matched by ``img``)."""
    attack = {
        name: json.loads((FIXTURE / f).read_text())["attack"]
        for name, f in zip(("original", "retrained"), FILES, strict=True)
    }
    order = [v["img"] for v in attack["original"]["values"]]
    by_img = {v["img"]: v for v in attack["retrained"]["values"]}
    assert len(set(order)) == len(order) == 200 and set(order) == set(by_img)
    values = {
        "original": {m: np.array([v[m] for v in attack["original"]["values"]]) for m in P.METRICS},
        "retrained": {m: np.array([by_img[i][m] for i in order]) for m in P.METRICS},
    }
    return {**attack, "values": values}


@pytest.mark.parametrize("name", FILES)
def test_fixture_copy_is_byte_identical(name):
    if not (SHARED_FIXTURE / name).exists():
        pytest.skip("the shared fixture folder is not on this machine")
    assert (FIXTURE / name).read_bytes() == (SHARED_FIXTURE / name).read_bytes()


def _assert_curves_match(df: pd.DataFrame, stored: dict, metric: str) -> None:
    for direction in P.DIRECTIONS:
        ours = df[df["direction"] == direction].reset_index(drop=True)
        curve = stored[f"{metric}_{direction}"]
        assert len(ours) == len(curve) == 51
        for i, row in enumerate(curve):
            for column in ("threshold", "fpr", "fnr", "attack_score"):
                assert round(float(ours[column][i]), 3) == row[column], (metric, direction, i, column)


@pytest.mark.parametrize("metric", P.METRICS)
def test_sweep_reproduces_published_original_curves(published, metric):
    values = published["values"]
    df = P.threshold_sweep(values["original"][metric], values["retrained"][metric], metric)
    _assert_curves_match(df, published["original"]["results"], metric)


@pytest.mark.parametrize("metric", P.METRICS)
def test_sweep_reproduces_published_retrained_self_curves(published, metric):
    retrained = published["values"]["retrained"][metric]
    df = P.threshold_sweep(retrained, retrained, metric)
    _assert_curves_match(df, published["retrained"]["results"], metric)
    assert (df["attack_score"] == 0).all()


def test_grid_is_linspace_not_decimal(published):
    # 18 of the 51 entropy thresholds lie one ulp above their 2-decimal value; the stored values are
    # rounded to 2 decimals, so a value equal to that decimal counts as below the threshold.
    grid = P.grid_thresholds("entropy")
    assert grid[3] == 0.15000000000000002 and grid[3] > 0.15
    assert (grid != np.round(grid, 2)).sum() == 18
    assert (P.grid_thresholds("confidence") == np.round(P.grid_thresholds("confidence"), 2)).all()
    # Exact decimal thresholds would disagree with the stored curves.
    values = published["values"]
    u = values["original"]["entropy"]
    stored = published["original"]["results"]["entropy_above_unlearn"]
    decimal_fnr = [round(float(np.mean(u < t)), 3) for t in np.round(grid, 2)]
    assert decimal_fnr != [row["fnr"] for row in stored]


def test_exact_sweep_bounds_the_published_grid(published):
    values = published["values"]
    u = {m: values["original"][m] for m in P.METRICS}
    r = {m: values["retrained"][m] for m in P.METRICS}
    exact = P.worst_case(u, r)
    grid = P.worst_case(u, r, n_thresholds=51)
    stored_max = max(row["attack_score"] for curve in published["original"]["results"].values() for row in curve)
    assert round(grid.attack_score, 3) == stored_max == 0.642
    assert exact.attack_score >= grid.attack_score
    assert (exact.metric, exact.direction, exact.threshold) == ("confidence", "above_unlearn", 6.73)
    assert round(exact.privacy_score, 4) == 0.3563
    # PS is the 51-point worst case read off the stored curves; PS_exact sees raw values too.
    assert round(grid.privacy_score, 3) == round(1 - stored_max, 3) == 0.358
    unclipped = P.worst_case(u, r, None, clip=False)
    assert unclipped.privacy_score <= exact.privacy_score <= grid.privacy_score


# ---------------------------------------------------------------------------------------------
# Attack features


def _naive_features(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    def softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    q = softmax(z / 2)
    p = softmax(z).max(axis=1)
    return -(q * np.log(q)).sum(axis=1), np.log(p) - np.log1p(-p)


def test_features_match_the_definition_on_moderate_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(64, 10))
    entropy, logodds = P.attack_features(z.astype(np.float32))
    naive_entropy, naive_logodds = _naive_features(z.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(entropy, naive_entropy, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(logodds, naive_logodds, rtol=1e-9, atol=1e-9)
    assert entropy.dtype == logodds.dtype == np.float64


def test_feature_edge_cases():
    entropy, logodds = P.attack_features(np.zeros((1, 10)))
    assert entropy[0] == pytest.approx(math.log(10)) and logodds[0] == pytest.approx(-math.log(9))
    _, tie = P.attack_features(np.array([[5.0, 5.0]]))
    assert tie[0] == 0.0
    _, tie3 = P.attack_features(np.array([[5.0, 5.0, -1e6]]))
    assert tie3[0] == pytest.approx(0.0, abs=1e-12)
    entropy, logodds = P.attack_features(np.array([[3.0]]))  # one class: certain
    assert entropy[0] == 0.0 and logodds[0] == P.LOGODDS_MAX
    empty = P.attack_features(np.zeros((0, 10)))
    assert empty[0].shape == empty[1].shape == (0,)


def test_huge_margins_give_large_finite_logodds():
    z = np.array([[1e4, 0.0, -3.0], [3e38, -3e38, 0.0], [1e308, -1e308, 0.0], [-1e308, 1e308, 1e308]])
    entropy, logodds = P.attack_features(z)
    assert np.isfinite(entropy).all() and np.isfinite(logodds).all()
    assert logodds[0] == pytest.approx(1e4 - np.log1p(np.exp(-3.0)), rel=1e-15)
    assert logodds[1] == 3e38 and logodds[2] == 1e308
    assert logodds[3] == 0.0  # two tied at the top
    assert entropy[0] == pytest.approx(0.0, abs=1e-12)
    # A margin beyond the float64 range saturates at LOGODDS_MAX instead of becoming inf.
    assert P.attack_features(np.array([[1e308, -1e308]]))[1][0] == P.LOGODDS_MAX
    f32 = np.array([[np.finfo(np.float32).max, np.finfo(np.float32).min]], dtype=np.float32)
    assert np.isfinite(P.attack_features(f32)[1]).all()


@pytest.mark.parametrize(
    ("logits", "message"),
    [
        (np.array([[0.0, np.nan]]), "NaN or infinite"),
        (np.array([[0.0, np.inf]]), "NaN or infinite"),
        (np.zeros(3), "shape"),
        (np.zeros((2, 0)), "shape"),
        ("abc", "numbers"),
    ],
)
def test_features_validate_input(logits, message):
    with pytest.raises(ValueError, match=message):
        P.attack_features(logits)


# ---------------------------------------------------------------------------------------------
# Attack score


def test_attack_score_spec_cases():
    assert P.attack_score(0.0, 0.0) == 1.0
    assert P.attack_score(1.0, 0.0) == 0.0 and P.attack_score(0.0, 1.0) == 0.0
    assert P.attack_score(1 - 1e-5, 0.2) == 0.0
    assert P.attack_score(0.5, 0.5) == 0.0 and P.attack_score(0.3, 0.7) == 0.0
    eps = min(math.log(1 - 1e-5 - 0.1) - math.log(0.2), math.log(1 - 1e-5 - 0.2) - math.log(0.1))
    assert P.attack_score(0.1, 0.2) == pytest.approx(1 - 2 ** (-eps), rel=1e-12)
    assert P.attack_score(0.1, 0.2) == P.attack_score(0.2, 0.1)
    # One rate 0, the other small: clipped to 1e-10, a strong but not perfect attack.
    eps = math.log(1 - 1e-5) - math.log(0.01)
    assert P.attack_score(0.0, 0.01) == pytest.approx(1 - 2 ** (-eps))
    assert 0.0 < P.attack_score(1e-12, 1e-12) < 1.0
    assert isinstance(P.attack_score(0.1, 0.2), float)


@pytest.mark.parametrize(
    ("fpr", "fnr", "delta"), [(-0.1, 0.2, 1e-5), (0.1, 1.2, 1e-5), (np.nan, 0.1, 1e-5), (0.1, 0.1, 0.7)]
)
def test_attack_score_validates(fpr, fnr, delta):
    with pytest.raises(ValueError):
        P.attack_score(fpr, fnr, delta)


# ---------------------------------------------------------------------------------------------
# Sweeps


def test_sweep_layout_and_clipping():
    u = np.array([-5.0, 0.5, 20.0])
    r = np.array([1.0, 2.0, 30.0])
    df = P.threshold_sweep(u, r, "confidence", n_thresholds=6)
    assert list(df.columns) == list(P.SWEEP_COLUMNS)
    assert list(df["direction"]) == ["above_unlearn"] * 6 + ["above_retrain"] * 6
    np.testing.assert_array_equal(df["threshold"][:6], np.linspace(-2.5, 10, 6))
    top = df[(df["direction"] == "above_unlearn") & (df["threshold"] == 10.0)].iloc[0]
    assert top["fpr"] == pytest.approx(1 / 3) and top["fnr"] == pytest.approx(2 / 3)  # 20 and 30 clip to 10
    bottom = df.iloc[0]
    assert bottom["fpr"] == 1.0 and bottom["fnr"] == 0.0 and bottom["attack_score"] == 0.0  # -5 clips to -2.5


def test_exact_sweep_matches_brute_force():
    rng = np.random.default_rng(1)
    u = np.round(rng.normal(0.8, 0.4, 300), 2)
    r = np.round(rng.normal(1.2, 0.5, 300), 2)
    df = P.threshold_sweep_exact(u, r, "entropy")
    uc, rc = np.clip(u, 0, 2.5), np.clip(r, 0, 2.5)
    thresholds = np.unique(np.concatenate([uc, rc]))
    assert len(df) == 2 * thresholds.size
    for direction, pos, neg in (("above_unlearn", uc, rc), ("above_retrain", rc, uc)):
        sub = df[df["direction"] == direction]
        np.testing.assert_array_equal(sub["threshold"], thresholds)
        np.testing.assert_allclose(sub["fpr"], [np.mean(neg >= t) for t in thresholds])
        np.testing.assert_allclose(sub["fnr"], [1 - np.mean(pos >= t) for t in thresholds])
        expected = [P.attack_score(np.mean(neg >= t), 1 - np.mean(pos >= t)) for t in thresholds]
        np.testing.assert_allclose(sub["attack_score"], expected, rtol=1e-12, atol=1e-15)
    fine = P.threshold_sweep(u, r, "entropy", n_thresholds=2001)
    assert df["attack_score"].max() >= fine["attack_score"].max()


@pytest.mark.parametrize(
    ("u", "r", "metric", "kwargs", "message"),
    [
        ([0.1, 0.2], [0.3], "entropy", {}, "same forget images"),
        ([], [], "entropy", {}, "empty"),
        ([0.1, np.nan], [0.1, 0.2], "entropy", {}, "NaN or infinite"),
        ([0.1], [np.inf], "confidence", {}, "NaN or infinite"),
        ([[0.1]], [[0.2]], "entropy", {}, "1-D"),
        ([0.1], [0.2], "loss", {}, "unknown metric"),
        ([0.1], [0.2], "entropy", {"n_thresholds": 1}, "n_thresholds"),
        ([0.1], [0.2], "entropy", {"n_thresholds": 2.5}, "n_thresholds"),
    ],
)
def test_sweep_validates(u, r, metric, kwargs, message):
    with pytest.raises(ValueError, match=message):
        P.threshold_sweep(u, r, metric, **kwargs)


# ---------------------------------------------------------------------------------------------
# Privacy score


def _confident(n: int, c: int = 10, margin: float = 12.0) -> np.ndarray:
    z = np.zeros((n, c))
    z[:, 0] = margin
    return z


def test_privacy_score_of_retrained_against_itself_is_one():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 4, size=(137, 10))
    assert P.privacy_score(z, z) == 1.0
    assert P.privacy_score(np.zeros((5, 10)), np.zeros((5, 10))) == 1.0  # constant


def test_privacy_score_of_separated_models_is_zero():
    rng = np.random.default_rng(3)
    confident = _confident(50) + rng.normal(0, 0.1, (50, 10))
    unsure = rng.normal(0, 0.1, (50, 10))
    assert P.privacy_score(confident, unsure) == 0.0
    assert P.privacy_score(unsure, confident) == 0.0
    assert P.privacy_score(_confident(1), np.zeros((1, 10))) == 0.0  # a single sample


def test_exact_score_separates_values_beyond_the_display_range():
    # Both models are confident (top-1 log-odds 15 vs 19, both clipped to 10 on the grid; entropy
    # below the first grid step for both): the published grid cannot tell them apart, raw values can.
    confident, more_confident = _confident(40, margin=15.0), _confident(40, margin=19.0)
    assert P.privacy_score(confident, more_confident) == 1.0
    assert P.privacy_score(confident, more_confident, exact=True) == 0.0
    worst = P.worst_case(confident, more_confident, None, clip=False)
    assert worst.metric in P.METRICS and worst.attack_score == 1.0
    with pytest.raises(ValueError, match="exact search"):
        P.max_attack_score([1.0], [2.0], "entropy", 51, clip=False)


def test_privacy_score_validates():
    with pytest.raises(ValueError, match="same forget images"):
        P.privacy_score(np.zeros((3, 10)), np.zeros((4, 10)))
    with pytest.raises(ValueError, match="at least one"):
        P.privacy_score(np.zeros((0, 10)), np.zeros((0, 10)))
    with pytest.raises(ValueError, match="NaN"):
        P.privacy_score(np.full((2, 3), np.nan), np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------
# Strategies and attribution


@pytest.fixture(scope="module")
def overlap():
    rng = np.random.default_rng(4)
    return np.round(rng.normal(0.6, 0.3, 120), 3), np.round(rng.normal(1.0, 0.35, 120), 3)


def test_custom_threshold(overlap):
    u, r = overlap
    choice = P.custom_threshold(u, r, "entropy")
    assert choice.threshold == 1.25 and choice.strategy == "custom"
    other = P.custom_threshold(
        u, r, "entropy", 1.25, "above_unlearn" if choice.direction == "above_retrain" else "above_retrain"
    )
    assert (choice.attack_score, choice.success_rate) >= (other.attack_score, other.success_rate)
    assert choice.success_rate + other.success_rate == pytest.approx(1.0)
    row = P.threshold_sweep(u, r, "entropy", n_thresholds=51)
    row = row[(row["direction"] == choice.direction) & np.isclose(row["threshold"], 1.25)].iloc[0]
    assert (choice.fpr, choice.fnr) == (row["fpr"], row["fnr"])
    assert choice.privacy_score == 1 - choice.attack_score
    assert P.custom_threshold(u, r, "confidence").threshold == 3.75
    with pytest.raises(ValueError, match="direction"):
        P.custom_threshold(u, r, "entropy", 1.0, "above")
    with pytest.raises(ValueError, match="finite"):
        P.custom_threshold(u, r, "entropy", float("nan"))


def test_max_attack_score_and_success_rate(overlap):
    u, r = overlap
    exact = P.threshold_sweep_exact(u, r, "entropy")
    best = P.max_attack_score(u, r, "entropy")
    assert best.attack_score == exact["attack_score"].max()
    grid = P.max_attack_score(u, r, "entropy", n_thresholds=51)
    assert grid.attack_score <= best.attack_score
    success = P.max_success_rate(u, r, "entropy")
    brute = max(
        max(np.mean(u >= t) + np.mean(r < t), np.mean(r >= t) + np.mean(u < t)) / 2 for t in np.unique(np.r_[u, r])
    )
    assert success.success_rate == pytest.approx(brute)
    assert success.success_rate >= best.success_rate


def test_common_threshold(overlap):
    u, r = overlap
    rng = np.random.default_rng(5)
    b = np.round(rng.normal(0.9, 0.35, 120), 3)
    choice_a, choice_b = P.common_threshold(u, b, r, "entropy")
    assert choice_a.threshold == choice_b.threshold and choice_a.strategy == "common"

    def best_at(v, t):
        return max(P.custom_threshold(v, r, "entropy", t, d).attack_score for d in P.DIRECTIONS)

    brute = max(best_at(u, t) + best_at(b, t) for t in np.unique(np.r_[u, b, r]))
    assert choice_a.attack_score + choice_b.attack_score == pytest.approx(brute)
    assert choice_a.attack_score == best_at(u, choice_a.threshold)
    grid_a, grid_b = P.common_threshold(u, b, r, "entropy", n_thresholds=51)
    assert grid_a.threshold in set(P.grid_thresholds("entropy"))


def test_worst_case_picks_the_separating_metric():
    rng = np.random.default_rng(6)
    n = 80
    # Same entropy distributions, log-odds shifted: only "confidence" separates.
    u = {"entropy": rng.uniform(0.5, 1.5, n), "confidence": rng.uniform(4, 6, n)}
    r = {"entropy": rng.uniform(0.5, 1.5, n), "confidence": rng.uniform(1, 3, n)}
    worst = P.worst_case(u, r)
    assert worst.metric == "confidence" and worst.direction == "above_unlearn"
    assert worst.attack_score == 1.0 and worst.privacy_score == 0.0 and worst.success_rate == 1.0
    assert worst.strategy == "worst_case" and worst.as_dict()["privacy_score"] == 0.0
    with pytest.raises(ValueError, match="lacks"):
        P.worst_case({"entropy": u["entropy"]}, r)


def test_attribution_agrees_with_rates(overlap):
    u, r = overlap
    ids = np.arange(1000, 1000 + u.size)
    for choice in (P.max_attack_score(u, r, "entropy"), P.custom_threshold(u, r, "entropy", 0.9, "above_retrain")):
        att = P.attribute_samples(u, r, "entropy", choice.threshold, choice.direction)
        assert att.unlearned_correct.shape == att.retrained_correct.shape == u.shape
        assert np.mean(att.unlearned_correct) == pytest.approx(
            1 - choice.fnr if choice.direction == "above_unlearn" else 1 - choice.fpr
        )
        assert att.success_rate == pytest.approx(choice.success_rate)
        np.testing.assert_array_equal(att.high_risk, att.unlearned_correct)
        frame = att.to_frame(ids)
        assert list(frame.columns) == ["position", "id", "model", "value", "predicted", "correct", "high_risk"]
        assert len(frame) == 2 * u.size and frame["high_risk"].sum() == att.high_risk.sum()
        assert (frame["correct"] == (frame["predicted"] == frame["model"])).all()
        assert set(frame.loc[frame["high_risk"], "id"]) == set(ids[att.high_risk])
    # A value exactly at the threshold counts as "at or above", as in the sweep.
    att = P.attribute_samples([0.5], [0.4], "entropy", 0.5, "above_unlearn")
    assert att.unlearned_correct[0] and att.retrained_correct[0]
    with pytest.raises(ValueError, match="ids"):
        att.to_frame([1, 2])


# ---------------------------------------------------------------------------------------------
# MIA-Efficacy


def _logits_for(p_true: np.ndarray, labels: np.ndarray, c: int = 10) -> np.ndarray:
    """Logits whose softmax gives ``p_true`` to the label and spreads the rest evenly."""
    p_true = np.clip(p_true, 1e-6, 1 - 1e-6)
    z = np.tile(np.log((1 - p_true) / (c - 1))[:, None], (1, c))
    z[np.arange(labels.size), labels] = np.log(p_true)
    return z


@pytest.fixture(scope="module")
def mia_sets():
    rng = np.random.default_rng(7)
    n = 300
    labels = rng.integers(1, 10, n)
    members = (_logits_for(1 - rng.exponential(0.002, n), labels), labels)
    non_members = (_logits_for(rng.uniform(0.2, 1.0, n), labels), labels)
    forget_labels = np.zeros(100, dtype=np.int64)
    forgotten = (_logits_for(rng.uniform(0.0, 0.05, 100), forget_labels), forget_labels)
    remembered = (_logits_for(1 - rng.exponential(0.002, 100), forget_labels), forget_labels)
    return members, non_members, forgotten, remembered


def test_true_class_probability(mia_sets):
    members = mia_sets[0]
    p = P.true_class_probability(members)
    logits, labels = members
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, (e / e.sum(axis=1, keepdims=True))[np.arange(labels.size), labels])
    with pytest.raises(ValueError, match="labels"):
        P.true_class_probability((logits, labels[:-1]))
    with pytest.raises(ValueError, match="lie in"):
        P.true_class_probability((logits, labels + 10))
    with pytest.raises(ValueError, match="Evaluation"):
        P.true_class_probability(logits)


def test_mia_efficacy_separates_forgotten_from_remembered(mia_sets):
    members, non_members, forgotten, remembered = mia_sets
    good = P.mia_report(members, non_members, forgotten, seed=0)
    bad = P.mia_report(members, non_members, remembered, seed=0)
    assert good.efficacy == 1.0 and bad.efficacy == 0.0
    assert good.svc_holdout_accuracy > 0.8
    assert (good.n_members, good.n_non_members, good.n_holdout_per_class, good.n_forget) == (300, 300, 60, 100)
    assert P.mia_efficacy(members, non_members, forgotten) == good.efficacy
    assert P.mia_report(members, non_members, forgotten, seed=0) == good  # deterministic
    assert math.isnan(P.mia_report(members, non_members, forgotten, holdout_share=0).svc_holdout_accuracy)


def test_mia_uninformative_feature_shows_in_holdout_accuracy(mia_sets):
    members, _, forgotten, _ = mia_sets
    report = P.mia_report(members, members, forgotten, seed=0)
    assert report.svc_holdout_accuracy <= 0.6


def test_mia_balances_and_validates(mia_sets):
    members, non_members, forgotten, _ = mia_sets
    logits, labels = non_members
    report = P.mia_report(members, (logits[:120], labels[:120]), forgotten, seed=3)
    assert report.n_members == report.n_non_members == 120
    with pytest.raises(ValueError, match="empty"):
        P.mia_report(members, (logits[:0], labels[:0]), forgotten)
    with pytest.raises(ValueError, match="forget"):
        P.mia_report(members, non_members, (logits[:0], labels[:0]))
    with pytest.raises(ValueError, match="holdout_share"):
        P.mia_report(members, non_members, forgotten, holdout_share=0.8)


# ---------------------------------------------------------------------------------------------
# Digits, forget class 3: the acceptance figures


def test_digits_original_remembers_and_retrained_forgets(digits_scenario, digits_reference_evals):
    original, retrained = digits_reference_evals["original"], digits_reference_evals["retrained"]
    u = P.forget_logits(digits_scenario, original["train"])
    r = P.forget_logits(digits_scenario, retrained["train"])
    assert u.shape == r.shape == (digits_scenario.forget_indices.size, 10)
    assert P.privacy_score(u, r) < 0.5
    assert P.privacy_score(r, r) == 1.0

    orig = P.privacy_metrics(digits_scenario, original["train"], original["test"], retrained["train"])
    retr = P.privacy_metrics(digits_scenario, retrained["train"], retrained["test"], retrained["train"])
    assert orig["PS"] == pytest.approx(P.privacy_score(u, r)) and retr["PS"] == 1.0
    assert orig["PS_exact"] == pytest.approx(P.privacy_score(u, r, exact=True)) and retr["PS_exact"] == 1.0
    assert orig["PS_exact"] <= orig["PS"]
    assert orig["PS_worst_case"]["privacy_score"] == orig["PS"]
    assert orig["PS_exact_worst_case"]["privacy_score"] == orig["PS_exact"]
    assert retr["MIA_efficacy"] >= 0.9 and orig["MIA_efficacy"] <= 0.1
    assert 0.0 <= orig["MIA_svc_accuracy"] <= 1.0
    assert set(orig) == {"PS", "PS_exact", "MIA_efficacy", "MIA_svc_accuracy", "PS_worst_case", "PS_exact_worst_case"}
    json.dumps(orig)  # plain JSON types
    given = P.privacy_metrics(  # the runner's call: attack values computed once, passed in
        digits_scenario, original["train"], original["test"], None,
        values=P.feature_values(u), retrained_values=P.forget_feature_values(digits_scenario, retrained["train"]),
    )
    assert given == orig
    with pytest.raises(ValueError, match="retrained_values"):
        P.privacy_metrics(digits_scenario, original["train"], original["test"], None)

    members, non_members = digits_scenario.mia_indices
    contract = P.mia_efficacy(
        original["train"].select(members),
        original["test"].select(non_members),
        original["train"].select(digits_scenario.forget_indices),
        seed=digits_scenario.train_seed,
    )
    assert contract == orig["MIA_efficacy"]


def test_the_svc_decision_from_its_support_vectors_gives_libsvms_labels():
    from mucomp.privacy.mia import _svc, _svc_predict

    rng = np.random.default_rng(4)
    members = np.clip(1 - rng.exponential(0.02, 3000), 0, 1)  # confident, as on a trained model
    non_members = np.clip(1 - rng.exponential(0.08, 3000), 0, 1)
    x = np.concatenate([members, non_members])
    clf = _svc().fit(x[:, None], np.concatenate([np.ones(3000), np.zeros(3000)]))
    queries = np.concatenate([rng.uniform(0, 1, 2000), members[:500], non_members[:500]])
    assert np.array_equal(_svc_predict(clf, queries), clf.predict(queries[:, None]))
