import numpy as np
import pytest
import torch

from mucomp.evaluation import evaluate, evaluate_scenario
from mucomp.models import layer_names, seeded_model


@pytest.fixture(scope="module")
def model():
    return seeded_model("digits_cnn", 10, 0)


def test_one_forward_pass_and_consistent_outputs(digits_scenario, model):
    split = digits_scenario.data.train
    seen = []
    handle = model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        ev = evaluate(model, split, digits_scenario.forget_indices, batch_size=64)
    finally:
        handle.remove()
    n = digits_scenario.forget_indices.size
    assert sum(seen) == n  # every image exactly once
    assert ev.logits.shape == (n, 10) and ev.features.shape == (n, 128)
    assert np.array_equal(ev.labels, np.full(n, 3))
    with torch.no_grad():
        direct = model.eval()(split.batch(digits_scenario.forget_indices)[0]).numpy()
        from_features = model.fc(torch.from_numpy(ev.features)).numpy()
    np.testing.assert_allclose(ev.logits, direct, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ev.logits, from_features, rtol=1e-5, atol=1e-5)


def test_activations_only_for_the_kept_subset(digits_scenario, model):
    split = digits_scenario.data.train
    keep = digits_scenario.activation_indices("train")
    ev = evaluate(model, split, None, layer_names("digits_cnn"), keep, batch_size=100)
    assert len(ev) == len(split)
    assert np.array_equal(ev.activation_indices, keep)
    assert ev.activations["block1"].shape == (keep.size, 32 * 8 * 8)
    assert ev.activations["fc"].shape == (keep.size, 10)
    rows = ev.positions(keep)
    np.testing.assert_allclose(ev.activations["fc"], ev.logits[rows], rtol=1e-6)
    forget = digits_scenario.cka_indices["train_forget"]
    np.testing.assert_allclose(ev.layer_activations("fc", forget), ev.logits[ev.positions(forget)], rtol=1e-6)
    np.testing.assert_allclose(ev.layer_activations("fc1", forget), ev.features[ev.positions(forget)], rtol=1e-6)


def test_mode_is_restored_and_weights_untouched(digits_scenario, model):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate(model, digits_scenario.data.test)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_select_and_missing_indices(digits_scenario, model):
    ev = evaluate(model, digits_scenario.data.test)
    sub = ev.select(digits_scenario.test_forget_indices)
    assert (sub.labels == 3).all() and len(sub) == digits_scenario.test_forget_indices.size
    with pytest.raises(KeyError):
        ev.positions(np.array([10_000]))
    with pytest.raises(ValueError, match="no layers named"):
        evaluate(model, digits_scenario.data.test, layers=["nope"])


def test_evaluate_scenario_covers_both_splits(digits_scenario, model):
    evals = evaluate_scenario(model, digits_scenario)
    assert len(evals["train"]) == len(digits_scenario.data.train)
    assert len(evals["test"]) == len(digits_scenario.data.test)
    assert set(evals["test"].activations) == set(layer_names("digits_cnn"))
