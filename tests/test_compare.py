"""mucomp.compare: the computations behind the Screen, Contrast and Attack pages.

Most tests use small hand-made results in the stored schema (exact expectations); the last group
runs the real pipeline once (digits, forget class 3) and checks the views on real results.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mucomp import compare, privacy
from mucomp.compare import (
    COLUMN_HELP,
    METRIC_DIRECTIONS,
    TABLE_COLUMNS,
    IncompatibleResultsError,
    MissingBlockError,
)
from mucomp.embedding import STATUSES

C = 4  # classes of the hand-made results
FORGET = 1


def make_result(
    experiment_id: str,
    kind: str = "unlearned",
    *,
    created_at: str = "2026-01-01T00:00:00+00:00",
    dataset: str = "digits",
    forget_class: int = FORGET,
    seed: int = 0,
    metrics: dict | None = None,
    config: dict | None = None,
    attack: dict | None = None,
    embedding: dict | None = None,
    cka: dict | None = None,
    **extra,
) -> dict:
    """A stored result in the runner's schema, with only what a test needs."""
    base_config = {"dataset": dataset, "forget_class": forget_class, "seed": seed, "method": kind, "base": None}
    if kind in ("unlearned",):
        base_config.update({"method": "ga", "base": "original", "epochs": 3, "lr": 0.01, "batch_size": 32})
    result = {
        "id": experiment_id,
        "kind": kind,
        "schema_version": 1,
        "created_at": created_at,
        "code_version": "test",
        "config": {**base_config, **(config or {})},
        "metrics": {"UA": 0.5, "RA": 0.9, "TUA": 0.4, "TRA": 0.85, "RT": 1.0, "PS": 0.5,
                    "MIA_efficacy": 0.6, "avg_gap": 0.1, **(metrics or {})},
        **extra,
    }
    for key, value in (("attack", attack), ("embedding", embedding), ("cka", cka)):
        if value is not None:
            result[key] = value
    return result


def attack_block(indices, entropy, confidence, probs=None) -> dict:
    n = len(indices)
    if probs is None:
        probs = np.full((n, C), 1.0 / C)
    return {"indices": list(map(int, indices)), "entropy": list(map(float, entropy)),
            "confidence": list(map(float, confidence)), "probs": np.asarray(probs).tolist()}


# ---------------------------------------------------------------------------------------------
# Screen: the experiment table


def test_table_has_the_screen_columns_references_first_then_by_creation_time():
    results = [
        make_result("bbbb", created_at="2026-01-03T00:00:00+00:00", method_label="Gradient ascent (GA)",
                    owner="session-1", metrics={"MIA_efficacy": 0.77, "avg_gap": 0.05, "RT": 12.5}),
        make_result("retrained-x", "retrained", created_at="2026-01-02T00:00:00+00:00", metrics={"RT": None}),
        make_result("aaaa", created_at="2026-01-01T00:00:00+00:00", config={"method": "rl", "base": "bbbb"}),
        make_result("original-x", "original", created_at="2026-01-05T00:00:00+00:00", metrics={"RT": None}),
        make_result("cccc", "custom", created_at="2026-01-04T00:00:00+00:00", method_label="my upload",
                    config={"epochs": None, "lr": None, "batch_size": None}),
    ]
    table = compare.experiment_table(results)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["ID"].tolist() == ["original-x", "retrained-x", "aaaa", "bbbb", "cccc"]
    assert table["Type"].tolist() == ["Original", "Retrained", "Unlearned", "Unlearned", "Custom"]
    assert table["Base"].tolist() == ["—", "—", "bbbb", "Original", "—"]
    assert table["Method"].tolist() == ["Original", "Retrained", "rl", "Gradient ascent (GA)", "my upload"]
    row = table.set_index("ID").loc["bbbb"]
    assert (row["Epochs"], row["Batch"], row["LR"]) == (3, 32, 0.01)
    assert (row["MIA"], row["Avg. Gap"], row["RT"], row["Owner"]) == (0.77, 0.05, 12.5, "session-1")
    assert table["Epochs"].dtype == "Int64" and table["Epochs"].isna().tolist() == [True, True, False, False, True]
    assert math.isnan(table.loc[0, "RT"]) and math.isnan(table.loc[4, "LR"])
    assert str(table["Created"].dtype).startswith("datetime64") and table.index.tolist() == list(range(5))


def test_table_accepts_experiments_and_optional_columns():
    class FakeExperiment:  # anything with a .result dict, like mucomp.store.Experiment
        def __init__(self, result):
            self.result = result

    result = make_result("aaaa", metrics={"UA": 0.25, "accs": [1.0, 0.25, None, 0.5]})
    table = compare.experiment_table([FakeExperiment(result)], ["w", "x", "y", "z"], per_class=True, salun=True)
    assert table.columns.tolist()[:10] == ["ID", "Type", "Base", "Method", "Seeds", "Epochs", "Batch", "LR", "UA", "UA (SalUn)"]
    assert table.loc[0, "UA (SalUn)"] == 0.75
    assert table.loc[0, ["Acc w", "Acc x", "Acc z"]].tolist() == [1.0, 0.25, 0.5]
    assert math.isnan(table.loc[0, "Acc y"])
    undated = {key: value for key, value in make_result("bbbb").items() if key != "created_at"}
    assert compare.experiment_table([undated, result])["ID"].tolist() == ["aaaa", "bbbb"]  # undated last
    empty = compare.experiment_table([])
    assert empty.empty and list(empty.columns) == list(TABLE_COLUMNS)
    with pytest.raises(IncompatibleResultsError, match="4 per-class accuracies but 3 class names"):
        compare.experiment_table([result], ["a", "b", "c"])


def test_references_whose_hub_file_differs_are_named_and_marked_in_the_table():
    from mucomp.ui import tables

    differs = {"file": "a.pth", "tolerance": 0.01, "figures": [], "matches": False, "message": "a.pth differs."}
    results = [make_result("original-x", "original", reference_check=differs),
               make_result("retrained-x", "retrained", reference_check={**differs, "matches": True}),
               make_result("aaaa")]
    assert compare.unreproduced_references(results) == {"original-x": "a.pth differs."}
    assert compare.reference_check_warnings(results) == ["a.pth differs."]
    view = tables.readable(compare.experiment_table(results), None, compare.unreproduced_references(results))
    assert view["Type"].tolist() == [f"{tables.UNREPRODUCED_MARK} Original", "Retrained", "Unlearned"]


def test_table_refuses_results_of_different_scenarios():
    with pytest.raises(IncompatibleResultsError, match="forget class:2 .*same scenario"):
        compare.experiment_table([make_result("aaaa"), make_result("bbbb", forget_class=2)])
    assert len(compare.experiment_table([make_result("aaaa"), make_result("bbbb", seed=1)], check_scenario=False)) == 2
    with pytest.raises(TypeError, match="stored result dict or an Experiment"):
        compare.experiment_table([42])


def test_every_column_has_a_plain_words_tooltip_and_metric_directions():
    for column in (*TABLE_COLUMNS, "UA (SalUn)"):
        text = COLUMN_HELP[column]
        assert text.endswith(".") and 20 < len(text) < 200, column
    for column, direction in METRIC_DIRECTIONS.items():
        assert direction in ("higher", "lower")
        assert f"({direction} is better" in COLUMN_HELP[column], column
    assert METRIC_DIRECTIONS["UA"] == "lower" and METRIC_DIRECTIONS["PS"] == "higher"


def test_experiment_label():
    assert compare.experiment_label(make_result("retrained-x", "retrained")) == "Retrained"
    # A built-in is named by the catalogue, whatever label was stored; another method by its label.
    assert compare.experiment_label(make_result("aaaa", method_label="GA")) == "Gradient ascent (GA) · aaaa"
    plugin = make_result("bbbb", method_label="My method")
    plugin["config"]["method"] = "my_method"
    assert compare.experiment_label(plugin) == "My method · bbbb"


# ---------------------------------------------------------------------------------------------
# Pareto front


def test_pareto_front_on_a_hand_made_table():
    table = pd.DataFrame(
        {
            "UA": [0.0, 0.1, 0.0, 0.5, 0.0, np.nan, 0.0],
            "TRA": [0.9, 0.95, 0.8, 0.95, 0.9, 1.0, 0.9],
            "PS": [0.8, 0.8, 0.9, 0.7, 0.8, 1.0, 0.7],
        },
        index=list("abcdefg"),
    )
    front = compare.pareto_front(table)
    # a and e are identical (neither dominates the other); b trades UA for TRA; c trades TRA for PS;
    # d is dominated by b; f has a missing objective; g is dominated by a.
    assert front.to_dict() == {"a": True, "b": True, "c": True, "d": False, "e": True, "f": False, "g": False}
    assert front.name == "pareto" and front.dtype == bool
    assert compare.pareto_front(table, (("UA", "min"),)).to_dict() == dict.fromkeys("abcdefg", False) | {
        "a": True, "c": True, "e": True, "g": True}
    nullable = pd.DataFrame({"Epochs": pd.array([3, None, 5], dtype="Int64"), "UA": [0.1, 0.0, 0.2]})
    assert compare.pareto_front(nullable, (("Epochs", "max"), ("UA", "min"))).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="no column 'XX'"):
        compare.pareto_front(table, (("XX", "min"),))
    with pytest.raises(ValueError, match="'min' or 'max'"):
        compare.pareto_front(table, (("UA", "lowest"),))


# ---------------------------------------------------------------------------------------------
# Contrast: class-wise accuracy, prediction matrix


def test_class_accuracy_and_retain_gap():
    a = make_result("aaaa", metrics={"accs": [1.0, 0.2, 0.9, None], "t_accs": [0.9, 0.1, 0.8, 0.7]})
    b = make_result("bbbb", metrics={"accs": [0.5, 0.0, 1.0, 0.6], "t_accs": [0.9, 0.3, 0.6, 0.7]})
    table = compare.class_accuracy(a, b, FORGET, "train", class_names=["w", "x", "y", "z"])
    assert table.columns.tolist() == ["class", "name", "acc_a", "acc_b", "diff", "is_forget"]
    assert table["name"].tolist() == ["w", "x", "y", "z"]
    assert table["acc_b"].tolist() == [0.5, 0.0, 1.0, 0.6]
    np.testing.assert_allclose(table["diff"].to_numpy()[:3], [0.5, 0.2, -0.1])
    assert math.isnan(table.loc[3, "acc_a"])
    assert table["is_forget"].tolist() == [False, True, False, False]
    # Retain classes 0, 2 (3 has no accuracy for A): mean(|0.5|, |-0.1|).
    assert compare.retain_gap(a, b, FORGET, "train") == pytest.approx(0.3)
    assert compare.retain_gap(a, b, None, "test") == pytest.approx((0.0 + 0.2 + 0.0) / 3)
    with pytest.raises(IncompatibleResultsError, match="does not match"):
        compare.class_accuracy(a, b, 2)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        compare.class_accuracy(a, b, FORGET, "val")
    with pytest.raises(IncompatibleResultsError, match="same scenario"):
        compare.class_accuracy(a, make_result("cccc", dataset="cifar10", metrics={"accs": [0] * 4}))
    with pytest.raises(MissingBlockError, match="lacks \\['accs'\\]"):
        compare.class_accuracy(a, make_result("dddd"))


def test_stored_prediction_matrix():
    matrix = [[1.0, 0.0], [0.25, 0.75]]
    result = make_result("aaaa", metrics={"label_dist": matrix, "t_conf_dist": [[0.5, 0.5], [None, None]]})
    np.testing.assert_array_equal(compare.stored_prediction_matrix(result, "train", "label"), matrix)
    conf = compare.stored_prediction_matrix(result, "test", "conf")
    assert conf[0].tolist() == [0.5, 0.5] and np.isnan(conf[1]).all()
    with pytest.raises(ValueError, match="'label' or 'conf'"):
        compare.stored_prediction_matrix(result, "train", "share")


def test_epoch_curves():
    records = [{"epoch": 2, "forget_accuracy": 0.5, "loss": -1.0, "seconds": 2.0},
               {"epoch": 1, "forget_accuracy": 0.9, "loss": -0.5, "seconds": 1.0}]
    curves = compare.epoch_curves(make_result("aaaa", epochs=records))
    assert curves.columns.tolist() == ["epoch", "forget_accuracy", "loss", "seconds"]
    assert curves["epoch"].tolist() == [1, 2] and curves["forget_accuracy"].tolist() == [0.9, 0.5]
    empty = compare.epoch_curves(make_result("retrained-x", "retrained"))
    assert empty.empty and empty.columns.tolist() == ["epoch", "forget_accuracy", "loss", "seconds"]


# ---------------------------------------------------------------------------------------------
# Contrast: twin embedding


def embedding_block(indices, layout, pred, probs) -> dict:
    layout = np.asarray(layout, dtype=float)
    return {"indices": list(map(int, indices)), "x": layout[:, 0].tolist(), "y": layout[:, 1].tolist(),
            "pred": list(map(int, pred)), "probs_t2": np.asarray(probs).tolist()}


@pytest.fixture
def embedding_pair():
    rng = np.random.default_rng(0)
    n = 30
    indices = np.arange(100, 100 + n)
    labels = np.zeros(200, dtype=np.int64)
    labels[indices] = np.arange(n) % C
    layout_a = rng.normal(size=(n, 2)) * 5
    probs_a = rng.dirichlet(np.ones(C), size=n)
    probs_b = rng.dirichlet(np.ones(C), size=n)
    # B: A's layout rotated by 40°, reflected, scaled by 3 and shifted, stored in another order.
    angle = np.deg2rad(40)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([1, -1])
    layout_b = 3.0 * layout_a @ rotation + np.array([7.0, -2.0])
    order = rng.permutation(n)
    a = make_result("aaaa", embedding=embedding_block(indices, layout_a, probs_a.argmax(1), probs_a))
    b = make_result("bbbb", embedding=embedding_block(indices[order], layout_b[order], probs_b.argmax(1)[order],
                                                      probs_b[order]))
    return a, b, labels, layout_a, probs_a, probs_b


def test_twin_embedding_aligns_b_onto_a_without_recomputing(embedding_pair):
    a, b, labels, layout_a, probs_a, probs_b = embedding_pair
    points = compare.twin_embedding(a, b, FORGET, labels=labels, temperature=2.0)  # as stored (probs_t2)
    expected_columns = ["index", "true_class", "pred_a", "pred_b", "is_forget", "x_a", "y_a", "x_b", "y_b",
                        "status_a", "status_b", "conf_a", "conf_b",
                        *[f"prob_a_{k}" for k in range(C)], *[f"prob_b_{k}" for k in range(C)]]
    assert points.columns.tolist() == expected_columns
    assert points["index"].tolist() == list(range(100, 130))  # A's order
    np.testing.assert_allclose(points[["x_a", "y_a"]].to_numpy(), layout_a)  # A untouched
    np.testing.assert_allclose(points[["x_b", "y_b"]].to_numpy(), layout_a, atol=1e-9)  # similarity undone
    np.testing.assert_allclose(points[[f"prob_b_{k}" for k in range(C)]].to_numpy(), probs_b)  # rows matched
    assert points["true_class"].tolist() == (np.arange(30) % C).tolist()
    assert points["is_forget"].tolist() == (np.arange(30) % C == FORGET).tolist()
    np.testing.assert_allclose(points["conf_a"], probs_a.max(axis=1))
    assert set(points["status_a"]) <= set(STATUSES)
    forget_rows = points[points["is_forget"]]
    assert ((forget_rows["pred_b"] == FORGET) == (forget_rows["status_b"] == "not_forgotten")).all()
    shown = compare.twin_embedding(a, b, FORGET, labels=labels)  # displayed: T = 1, p_t2 ** 2 renormalised
    np.testing.assert_allclose(shown[[f"prob_a_{k}" for k in range(C)]].to_numpy(),
                               probs_a**2 / (probs_a**2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(shown["conf_a"], shown[[f"prob_a_{k}" for k in range(C)]].to_numpy().max(axis=1))


def test_twin_of_a_result_with_itself_coincides(embedding_pair):
    a, _, labels, *_ = embedding_pair
    points = compare.twin_embedding(a, a, labels=labels)
    np.testing.assert_allclose(points["x_b"], points["x_a"], atol=1e-9)
    np.testing.assert_allclose(points["y_b"], points["y_a"], atol=1e-9)
    assert (points["pred_a"] == points["pred_b"]).all()


def test_twin_embedding_keeps_only_shared_images_and_validates(embedding_pair):
    a, b, labels, *_ = embedding_pair
    partial = dict(b)
    partial["embedding"] = {key: values[:20] for key, values in b["embedding"].items()}
    points = compare.twin_embedding(a, partial, labels=labels)
    assert len(points) == 20 and set(points["index"]) == set(partial["embedding"]["indices"])
    with pytest.raises(ValueError, match="whole train split"):
        compare.twin_embedding(a, b, labels=labels[:50])
    older = make_result("cccc", code_version="0.0.1")
    with pytest.raises(MissingBlockError, match="cccc .*no 'embedding' block.*Re-run"):
        compare.twin_embedding(a, older, labels=labels)
    with pytest.raises(IncompatibleResultsError, match="same scenario"):
        compare.twin_embedding(a, {**b, "config": {**b["config"], "seed": 3}}, labels=labels)


# ---------------------------------------------------------------------------------------------
# Contrast: CKA


def cka_block(values: dict[str, float], layers=("conv", "dense", "fc")) -> dict:
    report = {s: {layer: values[s] + 0.01 * k for k, layer in enumerate(layers)}
              for s in ("train_forget", "train_retain", "test_forget", "test_retain")}
    return {"layers": list(layers), "original": report, "retrained": {s: dict(v) for s, v in report.items()}}


def test_cka_frame_for_both_models_in_layer_order():
    a = make_result("aaaa", cka=cka_block({"train_forget": 0.5, "train_retain": 0.9, "test_forget": 0.4,
                                           "test_retain": 0.8}))
    b_block = cka_block({"train_forget": 0.2, "train_retain": 0.7, "test_forget": 0.1, "test_retain": 0.6})
    b_block["retrained"]["train_forget"] = dict(reversed(list(b_block["retrained"]["train_forget"].items())))
    b = make_result("bbbb", cka=b_block)
    frame = compare.cka_frame_for(a, b, "retrained")
    assert frame.columns.tolist() == ["model", "subset", "split", "part", "layer", "layer_index", "cka"]
    assert len(frame) == 2 * 4 * 3 and set(frame["model"]) == {"A", "B"}
    rows = frame[(frame["model"] == "B") & (frame["subset"] == "train_forget")]
    assert rows["layer"].tolist() == ["conv", "dense", "fc"] and rows["layer_index"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(rows["cka"], [0.2, 0.21, 0.22])
    assert set(frame.loc[frame["part"] == "retain", "subset"]) == {"train_retain", "test_retain"}
    only_a = compare.cka_frame_for(a, None, "original", model_names=("Model A", "-"))
    assert len(only_a) == 12 and set(only_a["model"]) == {"Model A"}
    with pytest.raises(ValueError, match="'original' or 'retrained'"):
        compare.cka_frame_for(a, b, "base")
    with pytest.raises(IncompatibleResultsError, match="different CKA layers"):
        compare.cka_frame_for(a, make_result("cccc", cka=cka_block(dict.fromkeys(b_block["original"], 0.5),
                                                                   ("conv", "fc"))))


# ---------------------------------------------------------------------------------------------
# Attack


@pytest.fixture
def attack_results():
    rng = np.random.default_rng(1)
    n = 60
    indices = np.sort(rng.choice(500, n, replace=False))
    values = {
        "model": (rng.uniform(0, 1.2, n), rng.normal(4, 2, n)),
        "other": (rng.uniform(0.3, 1.8, n), rng.normal(2, 2, n)),
        "retrained": (rng.uniform(0.8, 2.4, n), rng.normal(1, 1.5, n)),
    }
    probs = rng.dirichlet(np.ones(C), size=n)
    results = {
        name: make_result(name if name != "retrained" else "retrained-x", "retrained" if name == "retrained" else "unlearned",
                          attack=attack_block(indices, ent, conf, probs if name == "model" else probs[::-1]))
        for name, (ent, conf) in values.items()
    }
    return results, indices, values


@pytest.mark.parametrize("metric", ["entropy", "confidence"])
def test_attack_view_choices_equal_mucomp_privacy(attack_results, metric):
    results, indices, values = attack_results
    col = 0 if metric == "entropy" else 1
    u, o, r = values["model"][col], values["other"][col], values["retrained"][col]
    model, retrained = results["model"], results["retrained"]
    expected = {
        "custom": privacy.custom_threshold(u, r, metric, 0.9),
        "max_attack_score": privacy.max_attack_score(u, r, metric, 51),  # the drawn grid, as published
        "max_success_rate": privacy.max_success_rate(u, r, metric, 51),
        "common": privacy.common_threshold(u, o, r, metric, 51)[0],
    }
    for strategy, choice in expected.items():
        view = compare.attack_view(model, retrained, metric, strategy, threshold=0.9, other=results["other"])
        assert view.choice == choice, strategy
        assert view.strategy == strategy and view.metric == metric
        assert view.privacy_score == pytest.approx(1 - choice.attack_score)
        pd.testing.assert_frame_equal(view.sweep, privacy.threshold_sweep(u, r, metric, 51))
        attribution = privacy.attribute_samples(u, r, metric, choice.threshold, choice.direction)
        pd.testing.assert_frame_equal(view.attribution, attribution.to_frame(ids=indices))
        np.testing.assert_array_equal(view.high_risk, indices[attribution.high_risk])
        assert len(view.high_risk) + len(view.low_risk) == len(indices)
        # High-risk share = the attack's true-positive rate on the model's side.
        rate = 1 - choice.fnr if choice.direction == "above_unlearn" else 1 - choice.fpr
        assert len(view.high_risk) / len(indices) == pytest.approx(rate)
    exact = compare.attack_view(model, retrained, metric, "max_attack_score", grid_search=False)
    assert exact.choice == privacy.max_attack_score(u, r, metric)
    assert exact.choice.attack_score >= expected["max_attack_score"].attack_score
    aliases = compare.attack_view(model, retrained, metric, "custom_threshold", threshold=0.9)
    assert aliases.choice == expected["custom"] and aliases.strategy == "custom"


def test_attack_view_worst_case_picks_the_metric(attack_results):
    results, _, values = attack_results
    view = compare.attack_view(results["model"], results["retrained"], "confidence", "worst_case")
    expected = privacy.worst_case(
        {"entropy": values["model"][0], "confidence": values["model"][1]},
        {"entropy": values["retrained"][0], "confidence": values["retrained"][1]},
        51,
    )
    assert view.choice == expected and view.metric == expected.metric
    np.testing.assert_array_equal(view.values_model, values["model"][0 if expected.metric == "entropy" else 1])


def test_attack_view_validates_its_inputs(attack_results):
    results, indices, values = attack_results
    model, retrained = results["model"], results["retrained"]
    with pytest.raises(ValueError, match="unknown strategy"):
        compare.attack_view(model, retrained, "entropy", "best")
    with pytest.raises(ValueError, match="unknown metric"):
        compare.attack_view(model, retrained, "loss", "custom")
    with pytest.raises(ValueError, match="needs the other model"):
        compare.attack_view(model, retrained, "entropy", "common")
    with pytest.raises(IncompatibleResultsError, match="not it"):
        compare.attack_view(model, results["other"], "entropy", "custom")
    shuffled = make_result("dddd", attack=attack_block(indices[::-1], *values["model"]))
    with pytest.raises(IncompatibleResultsError, match="different forget images"):
        compare.attack_view(shuffled, retrained, "entropy", "custom")
    with pytest.raises(MissingBlockError, match="no 'attack' block"):
        compare.attack_view(make_result("eeee"), retrained, "entropy", "custom")
    broken = make_result("ffff", attack={**attack_block(indices, *values["model"]), "entropy": [None] * len(indices)})
    with pytest.raises(MissingBlockError, match="attack.entropy"):
        compare.attack_view(broken, retrained, "entropy", "custom")


def test_instance_probabilities(attack_results):
    results, indices, _ = attack_results
    model, other = results["model"], results["other"]
    probs_a, probs_b = compare.instance_probabilities(model, other, int(indices[5]))
    assert probs_a.tolist() == model["attack"]["probs"][5] and probs_b.tolist() == other["attack"]["probs"][5]
    with pytest.raises(ValueError, match="not one of Model A's forget images"):
        compare.instance_probabilities(model, other, 10_000)


# ---------------------------------------------------------------------------------------------
# Real results (digits, forget class 3): the references (shared with the session) and one quick
# experiment


@pytest.fixture(scope="module")
def real(tmp_path_factory, digits_references):
    from mucomp.embedding import warm_up
    from mucomp.runner import ExperimentConfig, run_experiment
    from mucomp.store import ExperimentStore

    # Compile UMAP through the warm-up thread, as the app does at start-up: a fit without it marks
    # the process warm with no thread, which tests/test_embedding.py's warm-up test does not expect.
    warm_up(background=False)
    store = ExperimentStore(tmp_path_factory.mktemp("compare-store"))
    ga = run_experiment(ExperimentConfig("digits", 3, 0, "ga", epochs=2), store)
    experiments = store.list()
    by_kind = {e.kind: e for e in experiments if e.kind in ("original", "retrained")}
    return {"store": store, "ga": ga, "all": experiments, **by_kind}


def test_real_table_and_worst_case_reproduce_the_stored_figures(real, digits_scenario):
    table = compare.experiment_table(real["all"], digits_scenario.spec.class_names, per_class=True)
    assert table["Type"].tolist() == ["Original", "Retrained", "Unlearned"]
    assert table["ID"].tolist() == [real["original"].id, real["retrained"].id, real["ga"].id]
    for experiment in real["all"]:
        row = table.set_index("ID").loc[experiment.id]
        assert row["PS"] == experiment.metrics["PS"] and row["MIA"] == experiment.metrics["MIA_efficacy"]
        assert row[f"Acc {digits_scenario.forget_class_name}"] == experiment.metrics["UA"]
        view = compare.attack_view(experiment, real["retrained"], "entropy", "worst_case")
        assert view.privacy_score == pytest.approx(experiment.metrics["PS"], abs=1e-12)
        assert view.choice.as_dict() == pytest.approx(experiment.result["attack"]["worst_case"])
    assert compare.pareto_front(table).loc[1]  # the Retrained model is never dominated


def test_real_contrast_views(real, digits_scenario):
    ga, other = real["ga"], real["original"]
    labels = digits_scenario.data.train.labels_np
    points = compare.twin_embedding(ga, other, labels=labels)
    assert points["index"].tolist() == digits_scenario.embedding_indices.tolist()
    assert points["is_forget"].sum() == np.sum(labels[digits_scenario.embedding_indices] == 3)
    pd.testing.assert_frame_equal(compare.twin_embedding(ga, other), points)  # labels read from the scenario
    same = compare.twin_embedding(ga, ga, labels=labels)
    np.testing.assert_allclose(same[["x_b", "y_b"]].to_numpy(), same[["x_a", "y_a"]].to_numpy(), atol=1e-6)
    table = compare.class_accuracy(ga, other, 3, "test")
    assert table["acc_a"].tolist() == ga.metrics["t_accs"] and table["acc_b"].tolist() == other.metrics["t_accs"]
    frame = compare.cka_frame_for(real["retrained"], other, "retrained")
    own = frame[frame["model"] == "A"]
    np.testing.assert_allclose(own["cka"], 1.0, atol=1e-9)  # the Retrained model against itself
    assert own.groupby("subset")["layer"].apply(list).map(lambda v: v == compare.cka_layers(other)).all()
    curves = compare.epoch_curves(ga)
    assert curves["epoch"].tolist() == [1, 2]
    assert curves["forget_accuracy"].tolist() == [r["forget_accuracy"] for r in ga.result["epochs"]]
    forget_image = int(ga.result["attack"]["indices"][0])
    probs_a, probs_b = compare.instance_probabilities(ga, other, forget_image)
    assert probs_a.shape == (10,) and probs_a.sum() == pytest.approx(1.0) and probs_b.sum() == pytest.approx(1.0)
    # The same image shows the same (T = 1) probabilities on Contrast and on Attack.
    both = points[points["index"].isin(ga.result["attack"]["indices"])].iloc[0]
    contrast = both[[f"prob_a_{k}" for k in range(10)]].to_numpy(dtype=float)
    np.testing.assert_allclose(contrast, compare.instance_probabilities(ga, other, int(both["index"]))[0],
                               rtol=1e-4, atol=1e-6)
