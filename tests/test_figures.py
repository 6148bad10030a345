"""mucomp.ui.figures: pure plotly builders, checked from the figures' data and layout."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from mucomp import compare, privacy
from mucomp.embedding import filter_mask, point_status
from mucomp.ui import figures
from mucomp.ui.figures import CLASS_COLORS, FORGET_SYMBOL, MODEL_COLORS, RETAIN_SYMBOL

NAMES = ["zero", "one", "two", "three"]
FORGET = 1


def shapes_named(fig: go.Figure, name: str) -> list:
    return [s for s in fig.layout.shapes if s.name == name]


def test_figures_and_compare_never_import_streamlit():
    code = ("import sys, mucomp.ui.figures, mucomp.compare, mucomp.ui; "
            "assert 'streamlit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_palette():
    assert len(CLASS_COLORS) == 10 and len(set(CLASS_COLORS)) == 10
    assert figures.class_color(3) == CLASS_COLORS[3] and figures.class_color(13) == CLASS_COLORS[3]
    assert MODEL_COLORS["A"] != MODEL_COLORS["B"]
    for color in (*CLASS_COLORS, *MODEL_COLORS.values()):
        r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 200, color  # dark enough for a white background


# ---------------------------------------------------------------------------------------------
# Class-wise accuracy, prediction matrix, probabilities


def accuracy_table() -> pd.DataFrame:
    acc_a = np.array([1.0, 0.2, 0.9, np.nan])
    acc_b = np.array([0.5, 0.0, 1.0, 0.6])
    return pd.DataFrame({"class": range(4), "name": NAMES, "acc_a": acc_a, "acc_b": acc_b,
                         "diff": acc_a - acc_b, "is_forget": np.arange(4) == FORGET})


def test_class_accuracy_figure_draws_the_table_and_marks_the_forget_class():
    table = accuracy_table()
    fig = figures.class_accuracy_figure(table, NAMES, FORGET, "GA · a1", "RL · b2")
    bar_a, bar_b = fig.data
    assert (bar_a.name, bar_b.name) == ("GA · a1", "RL · b2")
    assert list(bar_a.y) == [1.0, 0.2, 0.9, None] and list(bar_b.y) == [0.5, 0.0, 1.0, 0.6]
    assert (bar_a.marker.color, bar_b.marker.color) == (MODEL_COLORS["A"], MODEL_COLORS["B"])
    assert fig.layout.barmode == "group"
    (band,) = shapes_named(fig, "forget_class")
    assert (band.x0, band.x1) == (FORGET - 0.5, FORGET + 0.5)
    ticks = list(fig.layout.xaxis.ticktext)  # the forget class: bold, "forget" under it (never over a bar)
    assert ticks[0] == "zero" and ticks[1].startswith("<b>one</b><br>") and "forget" in ticks[1]
    assert not [a for a in fig.layout.annotations if a.yref == "paper" and a.y == 1.0]
    gap = compare.retain_gap_of(table)  # classes 0 and 2: (0.5 + 0.1) / 2
    assert gap == pytest.approx(0.3) and fig.layout.meta["retain_gap"] == pytest.approx(gap)
    assert "average retain gap 30.0 pp" in fig.layout.title.text
    assert fig.layout.yaxis.range == (0, 1.05) and fig.layout.yaxis.tickformat == ".0%"
    with pytest.raises(ValueError, match="3 class names given for 4 classes"):
        figures.class_accuracy_figure(table, NAMES[:3], FORGET)


def test_class_difference_figure_diverges_from_zero():
    table = accuracy_table()  # diff: 0.5, 0.2, -0.1, NaN
    fig = figures.class_difference_figure(table, NAMES, FORGET, "GA · a1", "RL · b2")
    up, down = fig.data
    assert (up.name, down.name) == ("GA · a1 higher", "RL · b2 higher")
    assert list(up.y) == [0.5, pytest.approx(0.2), None, None] and list(down.y) == [None, None, pytest.approx(-0.1), None]
    assert (up.marker.color, down.marker.color) == (MODEL_COLORS["A"], MODEL_COLORS["B"])
    assert up.customdata[2][1:] == [0.9, 1.0]  # the hover gives both accuracies
    assert fig.layout.barmode == "relative" and fig.layout.yaxis.range == pytest.approx((-0.575, 0.575))
    assert "A − B" in fig.layout.title.text and "30.0 pp" in fig.layout.title.text
    assert shapes_named(fig, "forget_class")[0].x0 == FORGET - 0.5
    small = figures.class_difference_figure(table.assign(diff=[0.01, 0.0, 0.0, 0.0]), NAMES, FORGET)
    assert small.layout.yaxis.range == pytest.approx((-0.115, 0.115))  # at least ±10 pp


@pytest.mark.parametrize("kind, text", [("label", "%{z:.0%}"), ("conf", "%{z:.2f}")])
def test_prediction_matrix_figure(kind, text):
    matrix = np.array([[0.9, 0.1, 0, 0], [0.3, 0.5, 0.2, 0], [0, 0, 1, 0], [np.nan] * 4])
    fig = figures.prediction_matrix_figure(matrix, NAMES, "Model A · train", kind, forget_class=FORGET)
    (heat,) = fig.data
    assert [list(row) for row in heat.z][:3] == matrix[:3].tolist() and list(heat.z[3]) == [None] * 4
    assert heat.texttemplate == text and (heat.zmin, heat.zmax) == (0.0, 1.0)
    assert heat.customdata[1][2] == ["one", "two"]  # row = true class, column = predicted
    assert fig.layout.yaxis.autorange == "reversed"  # true class 0 on top
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("Predicted class", "True class")
    (row,), (column,) = shapes_named(fig, "forget_row"), shapes_named(fig, "forget_column")
    assert (row.y0, row.y1, row.x0, row.x1) == (0.5, 1.5, -0.5, 3.5)
    assert (column.x0, column.x1, column.y0, column.y1) == (0.5, 1.5, -0.5, 3.5)
    assert fig.layout.title.text == "Model A · train"
    assert not shapes_named(figures.prediction_matrix_figure(matrix, NAMES, "t"), "forget_row")


def test_probability_bars_figure():
    a, b = np.array([0.1, 0.7, 0.1, 0.1]), np.array([0.25, 0.05, 0.6, 0.1])
    fig = figures.probability_bars_figure(a, b, NAMES, "A", "B", forget_class=FORGET)
    assert list(fig.data[0].y) == a.tolist() and list(fig.data[1].y) == b.tolist()
    assert [t.name for t in fig.data] == ["A", "B"]
    assert shapes_named(fig, "forget_class")[0].x0 == FORGET - 0.5
    assert fig.layout.yaxis.title.text == "Probability (softmax, T = 1)"
    assert "T = 2" in figures.probability_bars_figure(a, b, NAMES, temperature=2.0).layout.yaxis.title.text
    with pytest.raises(ValueError, match="one length"):
        figures.probability_bars_figure(a, b[:3], NAMES)


# ---------------------------------------------------------------------------------------------
# Embedding


def embedding_points(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    true_class = np.arange(n) % 4
    pred_a = np.where(rng.random(n) < 0.7, true_class, rng.integers(0, 4, n))
    pred_b = np.where(true_class == FORGET, 0, true_class)
    probs_a = rng.dirichlet(np.ones(4), n)
    probs_b = rng.dirichlet(np.ones(4), n)
    frame = pd.DataFrame({
        "index": np.arange(1000, 1000 + n), "true_class": true_class, "pred_a": pred_a, "pred_b": pred_b,
        "is_forget": true_class == FORGET, "x_a": rng.normal(size=n), "y_a": rng.normal(size=n),
        "x_b": rng.normal(size=n) * 3, "y_b": rng.normal(size=n),
        "status_a": point_status(true_class, pred_a, FORGET), "status_b": point_status(true_class, pred_b, FORGET),
        "conf_a": probs_a.max(1), "conf_b": probs_b.max(1),
    })
    for k in range(4):
        frame[f"prob_a_{k}"] = probs_a[:, k]
    for k in range(4):
        frame[f"prob_b_{k}"] = probs_b[:, k]
    return frame


def point_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if t.customdata is not None and t.name != "Selected"]


@pytest.mark.parametrize("which", ["a", "b"])
def test_embedding_figure_one_trace_per_predicted_class(which):
    points = embedding_points()
    fig = figures.embedding_figure(points, which, NAMES, FORGET)
    traces = point_traces(fig)
    assert "Outside filter" not in [t.name for t in traces]
    seen = []
    by_index = points.set_index("index")
    for trace in traces:
        k = NAMES.index(trace.name)
        assert trace.marker.color == CLASS_COLORS[k]
        ids = [row[0] for row in trace.customdata]
        assert (by_index.loc[ids, f"pred_{which}"] == k).all()
        assert list(trace.x) == by_index.loc[ids, f"x_{which}"].tolist()
        forget = by_index.loc[ids, "is_forget"].to_numpy()
        assert list(trace.marker.symbol) == [FORGET_SYMBOL if f else RETAIN_SYMBOL for f in forget]
        # The legend key takes the first point's symbol: the forget marker only for all-forget traces.
        assert trace.marker.symbol[0] == (FORGET_SYMBOL if forget.all() else RETAIN_SYMBOL)
        seen += ids
    assert sorted(seen) == points["index"].tolist()  # every point exactly once
    first = traces[0].customdata[0]
    row = by_index.loc[first[0]]
    assert first[1] == NAMES[row["true_class"]] and first[2] == NAMES[row["pred_a"]]
    assert first[3] == pytest.approx(row["conf_a"]) and first[4] == NAMES[row["pred_b"]]
    assert "%{customdata[0]}" in traces[0].hovertemplate and "Model B" in traces[0].hovertemplate
    # A click selects: Streamlit's front end turns clicks off while the drag mode is select or lasso.
    assert fig.layout.dragmode not in ("select", "lasso") and fig.layout.clickmode == "event+select"
    assert FORGET_SYMBOL in [t.marker.symbol for t in fig.data if t.customdata is None][0]
    assert '"bdata"' not in fig.to_json()  # plain lists: readable JSON, selection-friendly customdata


def test_twin_plots_share_class_colours_and_axis_ranges():
    points = embedding_points()
    fig_a = figures.embedding_figure(points, "a", NAMES, FORGET)
    fig_b = figures.embedding_figure(points, "b", NAMES, FORGET)
    colours = {t.name: t.marker.color for t in point_traces(fig_a)} | {t.name: t.marker.color for t in point_traces(fig_b)}
    assert colours == {name: CLASS_COLORS[k] for k, name in enumerate(NAMES) if name in colours}
    assert fig_a.layout.xaxis.range == fig_b.layout.xaxis.range
    lo, hi = fig_a.layout.xaxis.range
    assert lo < min(points["x_a"].min(), points["x_b"].min()) and hi > max(points["x_a"].max(), points["x_b"].max())


@pytest.mark.parametrize("filter_name", ["target", "correctly_forgotten", "not_forgotten", "overly_forgotten"])
def test_embedding_filter_dims_exactly_the_points_it_hides(filter_name):
    points = embedding_points()
    for which in ("a", "b"):
        fig = figures.embedding_figure(points, which, NAMES, FORGET, filter_name)
        mask = filter_mask(points, filter_name, which)
        dimmed = [t for t in fig.data if t.name == "Outside filter"]
        hidden = set(points.loc[~mask, "index"])
        if hidden:
            (trace,) = dimmed
            assert {row[0] for row in trace.customdata} == hidden
            assert trace.opacity == figures.DIM_OPACITY and trace.marker.color == figures.DIM_COLOR
            assert fig.data[0].name == "Outside filter"  # drawn first, under the others
        else:
            assert not dimmed
        shown = {row[0] for t in point_traces(fig) if t.name != "Outside filter" for row in t.customdata}
        assert shown == set(points.loc[mask, "index"])


def test_embedding_highlight_is_drawn_on_top():
    points = embedding_points()
    fig = figures.embedding_figure(points, "a", NAMES, FORGET, highlight=[1003, 1010, 99999])
    top = fig.data[-1]
    assert top.name == "Selected" and [row[0] for row in top.customdata] == [1003, 1010]
    assert top.marker.size == 13 and top.marker.line.width == 2
    with pytest.raises(ValueError, match="'a' or 'b'"):
        figures.embedding_figure(points, "c", NAMES, FORGET)
    with pytest.raises(ValueError, match="unknown filter"):
        figures.embedding_figure(points, "a", NAMES, FORGET, "forgotten")


def test_selection_indices_reads_both_customdata_shapes():
    event = {"selection": {"points": [
        {"customdata": [1003, "three", "one"], "point_index": 0},
        {"customdata": {"0": 1007}, "point_index": 2},
        {"customdata": [1003, "three", "one"], "point_index": 5},  # also in the "Selected" trace
        {"point_index": 1},
    ]}}
    assert figures.selection_indices(event) == [1003, 1007]
    assert figures.selection_indices(event["selection"]) == [1003, 1007]
    assert figures.selection_indices(None) == [] and figures.selection_indices({"selection": {"points": []}}) == []
    assert figures.selection_ids({"selection": {"points": [{"customdata": ["e43ec9df", "GA"]}]}}) == ["e43ec9df"]


# ---------------------------------------------------------------------------------------------
# CKA


def cka_frame() -> pd.DataFrame:
    rows = []
    for model, base in (("A", 0.5), ("B", 0.3)):
        for subset in ("train_forget", "train_retain", "test_forget", "test_retain"):
            split, part = subset.split("_")
            for k, layer in enumerate(["conv", "dense", "fc"]):
                value = np.nan if (model, subset, layer) == ("B", "train_retain", "fc") else base + 0.1 * k
                rows.append((model, subset, split, part, layer, k, value))
    return pd.DataFrame(rows, columns=["model", "subset", "split", "part", "layer", "layer_index", "cka"])


def test_cka_figure_lines_per_model_and_part():
    frame = cka_frame()
    fig = figures.cka_figure(frame, ["conv", "dense", "fc"], "CKA vs Retrained", model_labels={"A": "GA", "B": "RL"})
    assert [t.name for t in fig.data] == ["GA · forget", "GA · retain", "RL · forget", "RL · retain"]
    for trace in fig.data:
        assert list(trace.x) == ["conv", "dense", "fc"]
    assert list(fig.data[0].y) == pytest.approx([0.5, 0.6, 0.7]) and list(fig.data[3].y)[2] is None
    assert [t.line.color for t in fig.data] == [MODEL_COLORS["A"]] * 2 + [MODEL_COLORS["B"]] * 2
    assert [t.line.dash for t in fig.data] == ["solid", "dash"] * 2
    assert fig.layout.yaxis.range == (0, 1.02) and list(fig.layout.xaxis.categoryarray) == ["conv", "dense", "fc"]
    both = figures.cka_figure(frame, ["conv", "dense", "fc"], "both splits", split=None)
    assert len(both.data) == 8 and {t.marker.symbol for t in both.data} == {"circle", "square"}
    assert fig.layout.legend.yanchor == "top" and fig.layout.legend.y < 0  # under the plot, clear of the title


# ---------------------------------------------------------------------------------------------
# Attack


def test_attack_distribution_figure_counts_threshold_and_range():
    rng = np.random.default_rng(5)
    model, retrained = rng.normal(4, 5, 80), rng.normal(1, 2, 80)  # some values beyond the range
    fig = figures.attack_distribution_figure(model, retrained, "confidence", 3.0, "GA · a1",
                                             direction="above_unlearn")
    bars_model, bars_retrained = fig.data
    assert (bars_model.name, bars_retrained.name) == ("GA · a1", "Retrained")
    edges, counts = figures.histogram_counts(model, "confidence")
    assert list(bars_model.y) == counts.tolist() and sum(bars_model.y) == 80  # clipped values are counted
    assert sum(bars_retrained.y) == 80 and len(edges) == 51
    assert list(bars_model.x) == pytest.approx(((edges[:-1] + edges[1:]) / 2).tolist())
    assert counts[-1] == np.sum(model >= edges[-2])  # everything at or beyond the top lands in the last bin
    (line,) = shapes_named(fig, "threshold")
    assert line.x0 == line.x1 == 3.0
    assert fig.layout.xaxis.range == privacy.METRIC_RANGES["confidence"]
    (side,) = shapes_named(fig, "model_side")
    assert (side.x0, side.x1) == (3.0, 10.0)
    other = figures.attack_distribution_figure(model, retrained, "entropy", 0.5, direction="above_retrain")
    assert (shapes_named(other, "model_side")[0].x0, shapes_named(other, "model_side")[0].x1) == (0.0, 0.5)
    assert "Entropy" in other.layout.xaxis.title.text
    # Values beyond the range are marked: the edge ticks read "≥ 10" / "≤ -2.5" and a note counts them.
    beyond = [int(np.sum(model < -2.5)), int(np.sum(model > 10))]
    assert list(figures.beyond_range(model, "confidence")) == beyond and beyond[1] > 0
    assert fig.layout.xaxis.ticktext[-1] == "≥ 10" and fig.layout.xaxis.ticktext[0].startswith("≤")
    assert f"incl. {beyond[1]} above 10" in bars_model.customdata[-1][2]
    (note,) = [a for a in fig.layout.annotations if a.name == "clipped" and a.x == 10]
    assert note.text.startswith("≥ 10, in this bin") and f"{beyond[1]} this model" in note.text
    inside = figures.attack_distribution_figure([0.5, 1.0], [0.2, 2.0], "entropy", 0.5)
    assert "≥" not in "".join(inside.layout.xaxis.ticktext) and not [a for a in inside.layout.annotations
                                                                       if a.name == "clipped"]


def test_attack_curves_figure_draws_the_chosen_direction():
    rng = np.random.default_rng(6)
    sweep = privacy.threshold_sweep(rng.uniform(0, 2, 50), rng.uniform(0.5, 2.5, 50), "entropy")
    fig = figures.attack_curves_figure(sweep, 0.75, "above_retrain", metric="entropy")
    rows = sweep[sweep["direction"] == "above_retrain"]
    assert [t.name for t in fig.data] == ["Attack score", "FPR", "FNR"]
    assert list(fig.data[0].x) == rows["threshold"].tolist()
    assert list(fig.data[0].y) == rows["attack_score"].tolist()
    assert list(fig.data[1].y) == rows["fpr"].tolist() and list(fig.data[2].y) == rows["fnr"].tolist()
    (line,) = shapes_named(fig, "threshold")
    assert line.x0 == 0.75
    assert fig.layout.yaxis.range == (0, 1.02) and fig.layout.xaxis.range == (0.0, 2.5)
    with pytest.raises(ValueError, match="unknown direction"):
        figures.attack_curves_figure(sweep, 0.75, "above")


# ---------------------------------------------------------------------------------------------
# Screen


def test_epoch_figure():
    curves = pd.DataFrame({"epoch": [1, 2, 3], "forget_accuracy": [1.0, 0.6, 0.1], "loss": [-0.1, -0.5, -2.0],
                           "seconds": [1.0, 2.0, 3.0]})
    fig = figures.epoch_figure(curves)
    accuracy, loss = fig.data
    assert list(accuracy.x) == [1, 2, 3] and list(accuracy.y) == [1.0, 0.6, 0.1]
    assert list(loss.y) == [-0.1, -0.5, -2.0] and loss.yaxis == "y2" and accuracy.yaxis == "y"
    empty = figures.epoch_figure(curves.iloc[:0])
    assert not empty.data and "No per-epoch records" in empty.layout.annotations[0].text


def test_pareto_figure_highlights_the_front():
    table = pd.DataFrame({
        "ID": ["orig", "retr", "a1", "b2"], "Type": ["Original", "Retrained", "Unlearned", "Unlearned"],
        "Method": ["Original", "Retrained", "GA", "RL"], "UA": [1.0, 0.0, 0.1, 0.3],
        "TRA": [0.99, 0.98, 0.9, 0.8], "PS": [0.1, 1.0, 0.6, 0.5],
    })
    front = compare.pareto_front(table)
    assert front.tolist() == [True, True, False, False]
    fig = figures.pareto_figure(table, front)
    every, on_front, references = fig.data
    assert [row[0] for row in every.customdata] == ["orig", "retr", "a1", "b2"]
    assert list(every.x) == [1.0, 0.0, 0.1, 0.3] and list(every.y) == [0.99, 0.98, 0.9, 0.8]
    assert list(every.marker.color) == [0.1, 1.0, 0.6, 0.5] and (every.marker.cmin, every.marker.cmax) == (0, 1)
    assert list(every.marker.symbol) == ["square", "star", "circle", "circle"]
    assert on_front.name == "Pareto front" and [row[0] for row in on_front.customdata] == ["orig", "retr"]
    # the references once more on top, so no experiment hides the star and the square
    assert references.name == "References" and [row[0] for row in references.customdata] == ["orig", "retr"]
    assert list(references.marker.symbol) == ["square", "star"]
    assert "UA: %{x:.1%}" in every.hovertemplate and "PS: %{customdata[3]:.1%}" in every.hovertemplate  # as the axes
    assert "lower is better" in fig.layout.xaxis.title.text and "higher is better" in fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="one bool per table row"):
        figures.pareto_figure(table, [True])


def test_builders_are_deterministic():
    points = embedding_points()
    first = figures.embedding_figure(points, "b", NAMES, FORGET, "not_forgotten", highlight=[1001])
    second = figures.embedding_figure(points.copy(), "b", NAMES, FORGET, "not_forgotten", highlight=[1001])
    assert json.loads(first.to_json()) == json.loads(second.to_json())
