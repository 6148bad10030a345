import json
import math

import numpy as np
import pytest

from mucomp.evaluation import Evaluation
from mucomp.metrics import (
    accuracy_metrics,
    avg_gap,
    per_class_accuracy,
    prediction_matrix,
    to_json_safe,
    ua_salun,
)


def make_eval(labels, logits, split="train"):
    labels = np.asarray(labels)
    logits = np.asarray(logits, dtype=np.float32)
    return Evaluation(split, np.arange(labels.size), labels, logits, np.zeros((labels.size, 2), np.float32))


def one_hot_logits(predictions, num_classes=3, scale=10.0):
    out = np.zeros((len(predictions), num_classes), dtype=np.float32)
    out[np.arange(len(predictions)), predictions] = scale
    return out


def test_hand_computed_accuracies():
    # class 0: 2 of 3 right; class 1: 1 of 2 right; class 2: 1 of 1 right.
    train = make_eval([0, 0, 0, 1, 1, 2], one_hot_logits([0, 0, 1, 1, 2, 2]))
    # test: class 0 all wrong, class 1 right, class 2 right.
    test = make_eval([0, 1, 2], one_hot_logits([2, 1, 2]), "test")
    m = accuracy_metrics(train, test, forget_class=1)
    assert m["UA"] == pytest.approx(0.5)
    assert m["RA"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert m["TUA"] == pytest.approx(1.0)
    assert m["TRA"] == pytest.approx((0.0 + 1.0) / 2)
    assert m["accs"] == pytest.approx([2 / 3, 0.5, 1.0])


def test_empty_class_is_nan_and_left_out_of_the_means():
    train = make_eval([0, 0, 2], one_hot_logits([0, 1, 2]))  # class 1 absent
    test = make_eval([0, 2], one_hot_logits([0, 0]), "test")
    m = accuracy_metrics(train, test, forget_class=1)
    assert math.isnan(m["UA"]) and math.isnan(m["TUA"])
    assert m["RA"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["TRA"] == pytest.approx(0.5)
    assert math.isnan(m["accs"][1])
    safe = to_json_safe(m)
    assert safe["UA"] is None and safe["accs"][1] is None
    json.dumps(safe, allow_nan=False)
    only_forget = make_eval([1, 1], one_hot_logits([1, 1]))
    assert math.isnan(accuracy_metrics(only_forget, only_forget, 1)["RA"])


def test_prediction_matrix_by_hand():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2]]))
    ev = make_eval([0, 0, 1], logits)
    label_dist, conf_dist = prediction_matrix(ev, 3)
    np.testing.assert_allclose(label_dist[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(label_dist[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(conf_dist[0], [0.4, 0.5, 0.1], atol=1e-6)
    np.testing.assert_allclose(conf_dist[1], [0.5, 0.3, 0.2], atol=1e-6)
    assert np.isnan(label_dist[2]).all() and np.isnan(conf_dist[2]).all()
    np.testing.assert_allclose(label_dist[:2].sum(axis=1), 1.0)
    np.testing.assert_allclose(conf_dist[:2].sum(axis=1), 1.0)


def test_per_class_accuracy_validates_labels():
    with pytest.raises(ValueError, match="labels must lie"):
        per_class_accuracy(np.array([0, 5]), np.array([0, 0]), 3)


def test_literature_conventions():
    assert ua_salun({"UA": 0.25}) == pytest.approx(0.75)
    model = {"UA": 0.1, "RA": 0.9, "TRA": 0.8, "MIA_efficacy": 0.6}
    retrained = {"UA": 0.0, "RA": 1.0, "TRA": 0.9, "MIA_efficacy": 1.0}
    assert avg_gap(model, retrained) == pytest.approx((0.1 + 0.1 + 0.1 + 0.4) / 4)
    assert math.isnan(avg_gap({"UA": 0.1}, retrained))


def test_retemper_turns_stored_t2_probabilities_into_t1_ones():
    from mucomp.metrics import retemper, softmax

    logits = np.array([[3.0, 1.0, -2.0], [0.0, 0.0, 0.0], [40.0, -40.0, 0.0]])
    np.testing.assert_allclose(retemper(softmax(logits, 2.0), 2.0, 1.0), softmax(logits), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(retemper(softmax(logits), 1.0, 2.0), softmax(logits, 2.0), rtol=1e-12)
    one = softmax(logits[:1], 2.0)[0]
    np.testing.assert_allclose(retemper(one, 2.0), one**2 / (one**2).sum())  # p^2, renormalised
    assert retemper(np.array([[1.0, 0.0]]), 2.0).tolist() == [[1.0, 0.0]]  # an exact 0 stays 0
    with pytest.raises(ValueError, match="positive"):
        retemper(one, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        retemper(np.array([0.5, -0.5]), 2.0)
