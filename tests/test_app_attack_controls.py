"""The Attack page's controls say what its figures show (issue 31, defect 5): under the Worst case
strategy, which picks the attack feature itself, the feature control shows (locked) the feature
the thresholds and plots use, not the one last chosen for the other strategies. And its figures'
text stays clear of titles and bars (defect 6).

The store holds hand-made results of known attack values (no training): the models' confidence
separates them from the Retrained model completely, their entropy does not at all, so the worst
case is the confidence attack for both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mucomp import privacy
from mucomp.data import Scenario
from mucomp.results.attack import METRIC_LABELS, feature_control, relearn_frame
from mucomp.store import ExperimentStore
from mucomp.ui import figures
from tests.helpers import clear_app_caches, fresh_app_home
from tests.test_adversarial import C, digits_weights, full_result

ROOT = Path(__file__).resolve().parents[1]
N = 20
ROW = [1.0 / C] * C


def _result(kind: str, method: str, confidence: list[float]) -> dict:
    """A digits / forget class 3 result whose attack block holds the given confidence values."""
    base = full_result()
    entropy = np.linspace(0.2, 1.8, N).round(3).tolist()  # the same values for every model: no entropy attack
    config = {**base["config"], "forget": "class:3", "train_seed": 0, "data_seed": 0, "arch": "digits_cnn",
              "method": method}
    attack = {"indices": list(range(N)), "entropy": entropy, "confidence": confidence, "probs": [ROW] * N}
    result = {**base, "kind": kind, "config": config, "attack": attack}
    if kind != "unlearned":
        result["method_label"] = kind.capitalize()
    return result


@pytest.fixture()
def attack_home(tmp_path, monkeypatch):
    fresh_app_home(tmp_path, monkeypatch)
    store = ExperimentStore(tmp_path / "experiments")
    weights = digits_weights()
    ids = {}
    for name, kind, method, confidence in (("retrained", "retrained", "retrained", -1.0),
                                           ("a", "unlearned", "ga", 8.0), ("b", "unlearned", "ft", 6.0)):
        values = (confidence + np.linspace(0, 0.5, N)).round(3).tolist()
        ids[name] = store.save(_result(kind, method, values), weights).id
    yield ids
    clear_app_caches()


def _x_title(at: AppTest, key: str) -> str:
    chart = next(c for c in at.get("plotly_chart") if c.key == key)
    return json.loads(chart.proto.spec)["layout"]["xaxis"]["title"]["text"]


def test_worst_case_shows_and_locks_the_feature_it_plots(attack_home):
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
    at.session_state["mucomp_model_a"], at.session_state["mucomp_model_b"] = attack_home["a"], attack_home["b"]
    at.switch_page("pages/4_Attack.py").run()
    assert not at.exception, [e.value for e in at.exception]
    feature = at.segmented_control(key="attack_metric")
    assert feature.value == "entropy" and not feature.disabled  # the user's choice drives the other strategies
    assert at.slider(key="attack_threshold_a").label.startswith("Threshold (Entropy")

    at.selectbox(key="attack_strategy").set_value("worst_case").run()
    assert not at.exception, [e.value for e in at.exception]
    feature = at.segmented_control(key="attack_metric")
    assert feature.value == "confidence" and feature.disabled  # what is plotted, not the last choice
    confidence = METRIC_LABELS["confidence"]
    for which in ("a", "b"):
        assert at.slider(key=f"attack_threshold_{which}").label == f"Threshold ({confidence})"
        assert _x_title(at, f"attack_distribution_{which}").startswith("Confidence")
    assert any(f"{confidence} for both models" in c.value for c in at.caption)
    assert at.session_state["mucomp_attack"]["metric"] == "entropy"  # the setting keeps its meaning

    at.selectbox(key="attack_strategy").set_value("max_attack_score").run()
    feature = at.segmented_control(key="attack_metric")
    assert feature.value == "entropy" and not feature.disabled
    assert _x_title(at, "attack_distribution_a").startswith("Entropy")


def test_feature_control_follows_the_strategy():
    editable = feature_control("max_attack_score", "confidence", {"Model A": "confidence", "Model B": "confidence"})
    assert (editable.value, editable.editable, editable.note) == ("confidence", True, None)
    assert feature_control("custom_threshold", "entropy", {}).value == "entropy"  # an alias
    same = feature_control("worst_case", "entropy", {"Model A": "confidence", "Model B": "confidence"})
    assert (same.value, same.editable) == ("confidence", False) and "for both models" in same.note
    mixed = feature_control("worst_case", "entropy", {"Model A": "entropy", "Model B": "confidence"})
    assert mixed.value is None and not mixed.editable
    assert "Model A: Entropy" in mixed.note and f"Model B: {METRIC_LABELS['confidence']}" in mixed.note
    unknown = feature_control("worst_case", "entropy", {})  # no view could be computed
    assert unknown.value is None and not unknown.editable
    with pytest.raises(ValueError, match="unknown strategy"):
        feature_control("best", "entropy", {})
    with pytest.raises(ValueError, match="unknown metric"):
        feature_control("max_attack_score", "loss", {})


# ---------------------------------------------------------------------------------------------
# Layout (issue 31, defect 6): legends under the plot, clear of the title; labels clear of bars


@pytest.fixture(scope="module")
def attack_figures() -> dict:
    """Every Attack figure with a legend, built once for the module."""
    rng = np.random.default_rng(0)
    n = 40
    ranking = pd.DataFrame({"index": np.arange(n), "lr": rng.normal(0, 3, n), "phi": rng.normal(size=n),
                            "mu_unlearned": rng.normal(size=n), "mu_retrained": rng.normal(size=n)})
    ranking = ranking.sort_values("lr", ascending=False).reset_index(drop=True)
    ranking.insert(0, "rank", range(1, n + 1))
    ranking["flagged"] = ranking["lr"] > 0
    curve = {"steps": [0, 5, 10], "forget_accuracy": [0.0, 0.4, 0.8]}
    block = {"curves": {who: {"forget": curve, "retain_only": curve} for who in ("model", "retrained")}}
    model, retrained = rng.uniform(0, 0.4, n), rng.normal(1.0, 0.4, n)
    sweep = privacy.threshold_sweep(model, retrained, "entropy")
    return {
        "distribution": figures.attack_distribution_figure(model, retrained, "entropy", 0.5, "B: GA · a1",
                                                           direction="above_retrain"),
        "curves": figures.attack_curves_figure(sweep, 0.5, "above_retrain", metric="entropy"),
        "probabilities": figures.probability_bars_figure(np.full(10, 0.1), np.full(10, 0.1), list("abcdefghij"),
                                                         forget_class=3),
        "ulira": figures.ulira_lr_figure(ranking, title="Per-image LR of B: a long model label · a1b2c3"),
        "relearn": figures.relearn_figure(relearn_frame(block), 0.45, title="Relearning B: a long model label"),
    }


@pytest.mark.parametrize("name", ["distribution", "curves", "probabilities", "ulira", "relearn"])
def test_attack_legends_sit_under_the_plot_clear_of_the_title(attack_figures, name):
    fig = attack_figures[name]
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yanchor == "top" and legend.y < 0, name  # under the x axis
    assert fig.layout.margin.b >= 100  # room for the legend under the axis title
    assert fig.layout.title.x == 0.0 and fig.layout.title.xanchor == "left"


def test_distribution_labels_sit_above_the_bars_and_inside_the_plot():
    rng = np.random.default_rng(1)
    model = np.r_[rng.uniform(0, 0.3, 60), [-1.0] * 3]  # three values below the range: a note at the left edge
    fig = figures.attack_distribution_figure(model, rng.normal(1.0, 0.4, 63), "entropy", 0.3,
                                             direction="above_retrain")
    peak = max(max(trace.y) for trace in fig.data)
    top_of_bars = peak / fig.layout.yaxis.range[1]  # paper units
    labels = [a for a in fig.layout.annotations if a.yref == "paper"]
    assert {a.name for a in labels} == {"model_side", "threshold", "clipped"}
    label_height = 0.1  # two lines of 10 px on a ~290 px plot
    for label in labels:
        assert label.yanchor == "top" and label.y - label_height >= top_of_bars, label.name
    # Each label is written from its anchor toward the middle of the plot: never over the y axis.
    (side,) = [a for a in labels if a.name == "model_side"]
    assert (side.x, side.xanchor) == (0.0, "left")  # the side below the threshold: from the left edge, inward
    (note,) = [a for a in labels if a.name == "clipped"]
    assert (note.x, note.xanchor) == (0.0, "left") and "3 this model" in note.text
    high = figures.attack_distribution_figure(model, model, "entropy", 2.2, direction="above_unlearn")
    (threshold,) = [a for a in high.layout.annotations if a.name == "threshold"]
    assert threshold.xanchor == "right"  # near the right edge: written leftward, inside the plot
    (side,) = [a for a in high.layout.annotations if a.name == "model_side"]
    assert (side.x, side.xanchor) == (2.5, "right")


def test_relearning_target_is_named_in_the_legend_not_on_the_crossing_curves(attack_figures):
    fig = attack_figures["relearn"]
    target = fig.data[-1]
    assert target.meta == "target" and target.name.startswith("target") and list(target.y) == [0.45, 0.45]
    assert list(target.x) == [0, 10] and not fig.layout.annotations  # no label where the curves cross the line
