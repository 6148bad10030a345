"""Audits: class leakage and layer-wise decodability, on hand-made inputs and on digits."""

import numpy as np
import pytest

from mucomp.audits import class_leakage, js_divergence, layer_probes, probe_auc
from mucomp.audits.leakage import class_rank
from mucomp.models import layer_names


def test_js_divergence_is_zero_for_identical_rows_symmetric_and_at_most_ln2():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=20)
    q = rng.dirichlet(np.ones(10), size=20)
    assert np.allclose(js_divergence(p, p), 0.0)
    assert np.allclose(js_divergence(p, q), js_divergence(q, p))
    disjoint = js_divergence([[1.0, 0.0]], [[0.0, 1.0]])
    assert disjoint[0] == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="same images"):
        js_divergence(p, q[:5])


def test_rank_and_leakage_on_hand_made_probabilities():
    model = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])  # class 2 ranked 2nd, then 2nd
    retrained = np.array([[0.1, 0.8, 0.1], [0.7, 0.25, 0.05]])  # class 2 ranked 2nd (tie counts against), 3rd
    assert class_rank(model, 2).tolist() == [2, 2]
    assert class_rank(retrained, 2).tolist() == [2, 3]
    figures = class_leakage(model, retrained, 2)
    assert figures["mean_probability"] == pytest.approx([0.3, 0.4, 0.3])
    assert figures["rank_counts"] == [0, 2, 0] and figures["retrained_rank_counts"] == [0, 1, 1]
    assert figures["mean_rank"] == 2.0 and figures["retrained_mean_rank"] == 2.5
    assert figures["js_mean"] == pytest.approx(js_divergence(model, retrained).mean())
    assert class_leakage(retrained, retrained, 2)["js_mean"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="out of range"):
        class_leakage(model, retrained, 3)


def test_probe_auc_is_chance_on_random_labels_and_high_on_separable_ones():
    rng = np.random.default_rng(1)
    x_train, x_test = rng.normal(size=(300, 40)), rng.normal(size=(300, 40))
    random_auc = probe_auc(x_train, rng.integers(0, 2, 300), x_test, rng.integers(0, 2, 300))
    assert abs(random_auc - 0.5) < 0.1
    y_train, y_test = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    separable = probe_auc(x_train + 3 * y_train[:, None], y_train, x_test + 3 * y_test[:, None], y_test)
    assert separable > 0.99
    assert np.isnan(probe_auc(x_train, np.zeros(300), x_test, y_test))  # one label only: undefined


def test_wide_layers_are_average_pooled_per_channel_before_the_probe():
    from mucomp.audits.probes import MAX_PROBE_WIDTH, reduced_width

    rng = np.random.default_rng(2)
    conv = rng.normal(size=(5, 64 * 32 * 32)).astype(np.float32)  # a CIFAR ResNet-18 conv1 output
    pooled = reduced_width(conv, (64, 32, 32))
    expected = conv.reshape(5, 64, 4, 8, 4, 8).mean(axis=(3, 5)).reshape(5, 64 * 16)
    assert pooled.shape == (5, 1024) and np.allclose(pooled, expected, atol=1e-6)
    # A grid that must divide both sides: 6 x 10 x 15 under a cap of 100 keeps one mean per channel.
    odd = rng.normal(size=(3, 6 * 10 * 15)).astype(np.float32)
    assert np.allclose(reduced_width(odd, (6, 10, 15), cap=100), odd.reshape(3, 6, 150).mean(axis=2), atol=1e-6)
    tokens = rng.normal(size=(2, 197 * 768)).astype(np.float32)  # a ViT-B/16 block: the mean token
    assert np.allclose(reduced_width(tokens, (197, 768)), tokens.reshape(2, 197, 768).mean(axis=1), atol=1e-6)
    narrow = rng.normal(size=(4, MAX_PROBE_WIDTH))  # digits' widest layer: untouched, same object
    assert reduced_width(narrow, (32, 8, 8)) is narrow and reduced_width(conv, None) is conv


def test_digits_probe_and_leakage_of_the_references(digits_scenario, digits_reference_evals):
    from mucomp.metrics import softmax
    from mucomp.privacy import forget_logits

    layers = layer_names(digits_scenario.spec.arch)
    subsets = digits_scenario.cka_indices
    original = layer_probes(digits_reference_evals["original"], subsets, layers)
    retrained = layer_probes(digits_reference_evals["retrained"], subsets, layers)
    assert set(original) == set(layers) and all(0.5 <= v <= 1.0 for v in original.values())
    # The pass records each layer's shape: digits' layers are all probed at full width.
    shapes = digits_reference_evals["original"]["train"].activation_shapes
    assert shapes["block1"] == (32, 8, 8) and shapes["fc"] == (10,)
    # The Original learnt class 3; the Retrained never saw it, so its logits separate it less.
    assert original["fc"] > retrained["fc"]
    u = softmax(forget_logits(digits_scenario, digits_reference_evals["original"]["train"]))
    r = softmax(forget_logits(digits_scenario, digits_reference_evals["retrained"]["train"]))
    leakage = class_leakage(u, r, digits_scenario.forget_class)
    assert leakage["mean_rank"] < leakage["retrained_mean_rank"]  # the Original still ranks class 3 first
    assert leakage["rank_counts"][0] > 0.9 * len(u) and leakage["js_mean"] > 0.1


def test_a_runs_timings_table_lists_every_stored_stage_in_order_with_their_total():
    from mucomp.results import timings_table

    table = timings_table({"id": "abc123", "config": {}, "timings": {"references": 0.0, "unlearning": 1.5, "evaluation": 2.0, "probes": 0.25,
                                       "later_stage": 0.25, "bad": None}})
    assert table["Stage"].tolist() == ["preparing the references (first run of the scenario in its process)",
                                       "unlearning (RT)", "forward pass over the train and test images",
                                       "layer-wise decodability probes", "later_stage", "Total"]
    assert table["Seconds"].tolist() == [0.0, 1.5, 2.0, 0.25, 0.25, 4.0]
    assert timings_table({"id": "abc123", "config": {}, "timings": None}).empty
