"""Linear CKA: estimator properties, a textbook cross-check, and layer-wise CKA on digits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mucomp.evaluation import Evaluation
from mucomp.models import layer_names
from mucomp.similarity import (
    SUBSET_KEYS,
    center_gram,
    cka_frame,
    cka_from_grams,
    cka_report,
    cka_route,
    gram,
    hsic,
    layer_gram,
    layerwise_cka,
    linear_cka,
    precompute_grams,
    recorded_layers,
)

ROUTES = ("gram", "features")


# --- a textbook implementation, written independently of mucomp.similarity ------------------


def textbook_hsic(k: np.ndarray, l: np.ndarray, unbiased: bool) -> float:  # noqa: E741
    """Song et al. (2012) eq. 5 (unbiased) and Gretton et al. (2005) (biased), term by term."""
    n = k.shape[0]
    if not unbiased:
        h = np.eye(n) - np.ones((n, n)) / n
        return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2
    kt = k - np.diag(np.diag(k))
    lt = l - np.diag(np.diag(l))
    one = np.ones(n)
    first = np.trace(kt @ lt)
    second = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    third = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(first + second - third) / (n * (n - 3))


def textbook_cka(x: np.ndarray, y: np.ndarray, unbiased: bool = True) -> float:
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
    k, l = x @ x.T, y @ y.T  # noqa: E741
    return textbook_hsic(k, l, unbiased) / np.sqrt(textbook_hsic(k, k, unbiased) * textbook_hsic(l, l, unbiased))


def random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def related_pair(rng: np.random.Generator, n: int, d1: int, d2: int, shift: float = 0.0):
    """Two representations that share structure: y is a noisy linear map of x."""
    x = rng.standard_normal((n, d1)) + shift
    y = np.tanh(x @ rng.standard_normal((d1, d2)) / np.sqrt(d1)) + 0.5 * rng.standard_normal((n, d2))
    return x, y


# --- estimator properties ---------------------------------------------------------------------


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("shape", [(40, 7), (30, 300), (12, 3, 4, 4)])
def test_cka_of_x_with_itself_is_one(unbiased, route, shape):
    x = np.random.default_rng(1).standard_normal(shape) * 3 + 1
    assert linear_cka(x, x, unbiased, route=route) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(6, 60),
    d1=st.integers(1, 40),
    d2=st.integers(1, 40),
    scale_x=st.floats(1e-3, 1e3),
    scale_y=st.floats(-1e3, -1e-3) | st.floats(1e-3, 1e3),
    unbiased=st.booleans(),
)
def test_invariant_to_orthogonal_maps_and_isotropic_scaling(seed, n, d1, d2, scale_x, scale_y, unbiased):
    rng = np.random.default_rng(seed)
    x, y = related_pair(rng, n, d1, d2, shift=2.0)
    base = linear_cka(x, y, unbiased)
    moved_x = scale_x * x @ random_orthogonal(d1, rng)
    moved_y = scale_y * y @ random_orthogonal(d2, rng)
    for route in ("auto", *ROUTES):
        assert linear_cka(moved_x, y, unbiased, route=route) == pytest.approx(base, abs=1e-8)
        assert linear_cka(x, moved_y, unbiased, route=route) == pytest.approx(base, abs=1e-8)
        assert linear_cka(moved_x, moved_y, unbiased, route=route) == pytest.approx(base, abs=1e-8)
    assert -1.0 <= base <= 1.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(5, 50), d1=st.integers(1, 70), d2=st.integers(1, 70),
       shift=st.floats(-50, 50), unbiased=st.booleans())
def test_agrees_with_the_textbook_estimator(seed, n, d1, d2, shift, unbiased):
    x, y = related_pair(np.random.default_rng(seed), n, d1, d2, shift=shift)
    expected = textbook_cka(x, y, unbiased)
    for route in ("auto", *ROUTES):
        assert linear_cka(x, y, unbiased, route=route) == pytest.approx(expected, abs=1e-6)


def test_textbook_agreement_on_conv_shaped_float32_maps():
    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal((64, 8, 6, 6)), 0).astype(np.float32)
    y = np.maximum(x * 0.7 + rng.standard_normal(x.shape).astype(np.float32), 0)
    for unbiased in (True, False):
        expected = textbook_cka(x, y, unbiased)
        assert linear_cka(x, y, unbiased) == pytest.approx(expected, abs=1e-6)
        assert linear_cka(x, y, unbiased, route="features") == pytest.approx(expected, abs=1e-6)


def test_hsic_matches_the_textbook_scaled_values():
    rng = np.random.default_rng(2)
    x, y = related_pair(rng, 25, 6, 9, shift=1.5)
    k, l = x @ x.T, y @ y.T  # noqa: E741
    for unbiased in (True, False):
        assert hsic(k, l, unbiased) == pytest.approx(textbook_hsic(k, l, unbiased), rel=1e-9)
        # gram() centres the features first; both estimators ignore that shift
        assert hsic(gram(x), gram(y), unbiased) == pytest.approx(textbook_hsic(k, l, unbiased), rel=1e-9)


def test_u_centred_gram_has_zero_diagonal_and_zero_row_sums():
    x = np.random.default_rng(3).standard_normal((20, 5)) + 4
    u = center_gram(x @ x.T, unbiased=True)
    assert np.allclose(np.diag(u), 0) and np.allclose(u.sum(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(u, u.T)


def test_unbiased_and_biased_agree_for_large_n_on_low_rank_data():
    rng = np.random.default_rng(4)
    n, rank = 3000, 5
    z = rng.standard_normal((n, rank))
    x = z @ rng.standard_normal((rank, 60))
    y = np.tanh(z @ rng.standard_normal((rank, 90))) + 0.1 * rng.standard_normal((n, 90))
    unbiased, biased = linear_cka(x, y, True), linear_cka(x, y, False)
    assert 0.2 < unbiased < 1.0
    assert abs(unbiased - biased) <= 0.02


def test_independent_random_matrices_score_about_zero_unbiased():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((600, 400)), rng.standard_normal((600, 300))
    assert abs(linear_cka(x, y, True)) < 0.02
    # the biased estimator is pulled far up when d is comparable to n
    assert linear_cka(x, y, False) > 0.3


def test_routes_and_chunking_agree_and_route_choice():
    rng = np.random.default_rng(7)
    x, y = related_pair(rng, 30, 200, 5)
    assert linear_cka(x, y, route="gram") == pytest.approx(linear_cka(x, y, route="features"), abs=1e-10)
    np.testing.assert_allclose(gram(x, chunk_bytes=8 * 30 * 7), gram(x), rtol=1e-12, atol=1e-9)
    assert cka_route(5000, 512, 512) == "features"
    assert cka_route(250, 65536, 65536) == "gram"
    assert cka_from_grams(x @ x.T, y @ y.T) == pytest.approx(linear_cka(x, y), abs=1e-10)


def test_constant_representation_gives_nan_and_bad_input_is_rejected():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((10, 4))
    for route in ROUTES:
        assert np.isnan(linear_cka(np.full((10, 3), 2.5), x, route=route))
        assert np.isnan(linear_cka(x, np.zeros((10, 3)), route=route))
    with pytest.raises(ValueError, match="same images"):
        linear_cka(x, x[:9])
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(x[:3], x[:3])
    assert linear_cka(x[:3], x[:3], unbiased=False) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.where(x > 1, np.nan, x), x)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        linear_cka(x[:, 0], x[:, 0])
    with pytest.raises(ValueError, match="route"):
        linear_cka(x, x, route="fast")
    with pytest.raises(ValueError, match="square"):
        cka_from_grams(np.ones((4, 4)), np.ones((5, 5)))


# --- layer-wise CKA on Evaluations ------------------------------------------------------------


def fake_eval(split: str, indices: np.ndarray, activations: dict[str, np.ndarray]) -> Evaluation:
    n = indices.size
    return Evaluation(
        split=split,
        indices=indices,
        labels=np.zeros(n, np.int64),
        logits=np.zeros((n, 2), np.float32),
        features=np.zeros((n, 3), np.float32),
        activation_indices=indices,
        activations=activations,
    )


def test_layerwise_cka_reads_the_requested_images_in_order():
    rng = np.random.default_rng(9)
    idx = np.arange(100, 160)
    conv_a = rng.standard_normal((60, 4 * 3 * 3)).astype(np.float32)
    conv_b = (conv_a + rng.standard_normal(conv_a.shape)).astype(np.float32)
    ref = fake_eval("train", idx, {"conv": conv_a, "fc": conv_a[:, :5]})
    model = fake_eval("train", idx, {"conv": conv_b, "fc": conv_b[:, :5]})
    subset = np.array([150, 101, 130, 102, 140, 120, 111, 159])
    rows = subset - 100
    result = layerwise_cka(ref, model, subset)
    assert list(result) == ["conv", "fc"]
    assert result["conv"] == pytest.approx(textbook_cka(conv_a[rows], conv_b[rows]), abs=1e-9)
    assert result["fc"] == pytest.approx(textbook_cka(conv_a[rows, :5], conv_b[rows, :5]), abs=1e-9)
    # default: every image both kept
    assert layerwise_cka(ref, model)["conv"] == pytest.approx(textbook_cka(conv_a, conv_b), abs=1e-9)
    assert layerwise_cka(ref, model, subset, layers=["fc"]).keys() == {"fc"}
    with pytest.raises(KeyError, match="not in this kept activations"):
        layerwise_cka(ref, model, np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="repeat"):
        layerwise_cka(ref, model, np.array([101, 101, 102, 103]))
    with pytest.raises(ValueError, match="different splits"):
        layerwise_cka(ref, dataclasses.replace(model, split="test"))
    with pytest.raises(ValueError, match="no layer activations"):
        layerwise_cka(ref, fake_eval("train", idx, {}))


def test_grams_are_cached_and_survive_dropping_the_activations():
    rng = np.random.default_rng(10)
    idx = np.arange(40)
    ref = fake_eval("test", idx, {"a": rng.standard_normal((40, 30)), "b": rng.standard_normal((40, 3))})
    model = fake_eval("test", idx, {"a": rng.standard_normal((40, 30)), "b": rng.standard_normal((40, 3))})
    subsets = {"test_forget": idx[:15], "test_retain": idx[15:], "train_forget": np.arange(1000, 1010)}
    expected = {key: layerwise_cka(ref, model, subsets[key], unbiased=False) for key in ("test_forget", "test_retain")}
    assert len(ref.grams) == 4  # 2 layers x 2 subsets, cached by the calls above
    first = layer_gram(ref, "a", subsets["test_forget"])
    assert layer_gram(ref, "a", subsets["test_forget"]) is first

    compact = dataclasses.replace(model, activations=dict(model.activations), grams={})
    precompute_grams(compact, subsets, drop_activations=True)  # train_* keys are skipped
    assert compact.activations == {} and len(compact.grams) == 4
    assert recorded_layers(compact) == ["a", "b"]
    for key in ("test_forget", "test_retain"):
        assert layerwise_cka(ref, compact, subsets[key], unbiased=False) == expected[key]
    with pytest.raises(KeyError, match="dropped"):
        compact.layer_activations("a", idx[:5])
    with pytest.raises(KeyError, match="precompute_grams"):
        layerwise_cka(ref, compact, idx[:20])
    assert model.activations  # the original evaluation is untouched


@pytest.fixture(scope="module")
def digits_model_evals(digits_reference_evals):
    """Copies of the reference evaluations with their own (empty) Gram caches."""
    return {
        kind: {split: dataclasses.replace(ev, grams={}) for split, ev in evals.items()}
        for kind, evals in digits_reference_evals.items()
    }


def test_digits_retrained_vs_original_differs_most_on_the_forget_class(digits_scenario, digits_model_evals):
    """Acceptance: at the last layers, CKA(Original, Retrained) is higher on retain than forget."""
    report = cka_report({"original": digits_model_evals["original"]}, digits_model_evals["retrained"],
                        digits_scenario.cka_indices)
    by_subset = report["original"]
    assert list(by_subset) == list(SUBSET_KEYS)
    assert all(list(values) == layer_names("digits_cnn") for values in by_subset.values())
    for layer in ("fc1", "fc"):
        for split in ("train", "test"):
            assert by_subset[f"{split}_retain"][layer] > by_subset[f"{split}_forget"][layer] + 0.05, layer
    for values in by_subset.values():
        assert all(0.0 < v < 1.0 for v in values.values())


def test_digits_full_report_against_both_references(digits_scenario, digits_model_evals):
    refs = digits_model_evals
    report = cka_report(refs, refs["retrained"], digits_scenario.cka_indices)
    assert list(report) == ["original", "retrained"]
    for subset in SUBSET_KEYS:
        assert report["retrained"][subset] == pytest.approx(dict.fromkeys(layer_names("digits_cnn"), 1.0), abs=1e-9)
        assert report["original"][subset] != report["retrained"][subset]
    frame = cka_frame(report, model="B")
    assert len(frame) == 2 * 4 * len(layer_names("digits_cnn"))
    assert list(frame.columns) == ["model", "reference", "subset", "split", "part", "layer", "layer_index", "cka"]
    assert set(frame["part"]) == {"forget", "retain"} and set(frame["split"]) == {"train", "test"}
    row = frame[(frame.reference == "original") & (frame.subset == "test_forget") & (frame.layer == "fc")]
    assert row["cka"].item() == report["original"]["test_forget"]["fc"]
    assert row["layer_index"].item() == len(layer_names("digits_cnn")) - 1


def test_report_validates_its_inputs(digits_scenario, digits_model_evals):
    refs = digits_model_evals
    with pytest.raises(KeyError, match="no 'test' evaluation"):
        cka_report(refs, {"train": refs["original"]["train"]}, digits_scenario.cka_indices)
    with pytest.raises(ValueError, match="must start with"):
        cka_report(refs, refs["original"], {"forget": digits_scenario.cka_indices["train_forget"]})
    with pytest.raises(ValueError, match="evaluation of the 'test' split"):
        cka_report(refs, {"train": refs["original"]["test"], "test": refs["original"]["test"]},
                   digits_scenario.cka_indices)
    with pytest.raises(ValueError, match="no reference"):
        cka_report({}, refs["original"], digits_scenario.cka_indices)


def test_frame_reads_a_stored_null_as_nan():
    # A layer with no variance has CKA NaN, which the result JSON stores as null.
    frame = cka_frame({"original": {"train_forget": {"block1": 0.5, "fc": None}}})
    assert frame["cka"].iloc[0] == 0.5 and math.isnan(frame["cka"].iloc[1])
