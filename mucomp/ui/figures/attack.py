"""Figures of the Attack page: the attack's value distributions and curves, the instance panel's
probabilities, and the on-demand audits (U-LiRA's likelihood ratios, relearning curves); pure
plotly, conventions in :mod:`mucomp.ui.figures.common`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp.privacy import DIRECTIONS, METRIC_RANGES
from mucomp.ui.figures.common import (
    CURVE_COLORS,
    FORGET_COLOR,
    METRIC_AXIS_TITLES,
    MODEL_COLORS,
    base_layout,
    check_forget,
    check_names,
    forget_tick_text,
    legend_below,
    mark_forget_column,
    plain_list,
    rgba,
)


def _check_metric(metric: str) -> tuple[float, float]:
    if metric not in METRIC_RANGES:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_RANGES)}")
    return METRIC_RANGES[metric]


def histogram_counts(values: Any, metric: str, n_bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """``(edges [n_bins + 1], counts [n_bins])`` of ``values`` clipped into the metric's range;
    the bins span the range evenly (the last one includes the top, where clipped values land)."""
    lo, hi = _check_metric(metric)
    clipped = np.clip(np.asarray(values, dtype=np.float64), lo, hi)
    counts, edges = np.histogram(clipped, bins=int(n_bins), range=(lo, hi))
    return edges, counts


def beyond_range(values: Any, metric: str) -> tuple[int, int]:
    """How many ``values`` lie below and above the metric's range: the attack clips them onto
    its edges, so they are counted in the first / last histogram bin."""
    lo, hi = _check_metric(metric)
    x = np.asarray(values, dtype=np.float64)
    return int(np.sum(x < lo)), int(np.sum(x > hi))


def _edge_ticks(lo: float, hi: float, below: bool, above: bool) -> dict:
    """x ticks over ``[lo, hi]`` whose end labels read "≤ lo" / "≥ hi" when values were clipped there."""
    step = 2.5 if hi - lo > 5 else 0.5
    values = [float(v) for v in np.round(np.arange(lo, hi + step / 2, step), 6)]
    text = [f"{v:g}" for v in values]
    if below:
        text[0] = f"≤ {values[0]:g}"
    if above:
        text[-1] = f"≥ {values[-1]:g}"
    return {"tickmode": "array", "tickvals": values, "ticktext": text}


#: Rows of the distribution's labels, from the top of the plot (paper units, each label's top):
#: the side called "this model", the threshold, the notes on clipped values. The y axis leaves
#: room above the tallest bar (:data:`HEADROOM`, more with notes), so no label covers a bar.
LABEL_ROWS = (1.0, 0.92, 0.84)
HEADROOM, HEADROOM_NOTES = 1.3, 1.5
#: Behind those labels: a line they cross stays readable under them.
LABEL_BACKGROUND = "rgba(255, 255, 255, 0.85)"


def attack_distribution_figure(
    values_model: Any,
    values_retrained: Any,
    metric: str,
    threshold: float,
    label_model: str = "Model A",
    *,
    direction: str | None = None,
    color: str | None = None,
    n_bins: int = 50,
) -> go.Figure:
    """Overlaid histograms of one attack metric on the forget images: the model (trace 0) and
    the Retrained model (trace 1), values clipped into the metric's range (the attack's rule).

    Bars are counts per bin (:func:`histogram_counts`, 50 bins = the 51-threshold grid). A
    vertical line marks ``threshold``. With ``direction`` the side the attack calls "the model"
    is shaded (``above_unlearn``: at or above the threshold). x range = the metric's range.
    Values beyond the range (:func:`beyond_range`) land in the edge bins: the edge's tick then
    reads "≥ 10" (or "≤ −2.5"), the edge bin's hover and an annotation (name ``"clipped"``) say
    how many. Labels sit in rows above the tallest bar (:data:`LABEL_ROWS`), the legend under
    the plot.
    """
    lo, hi = _check_metric(metric)
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    threshold = float(threshold)
    color = color or MODEL_COLORS["A"]
    fig = go.Figure()
    clipped: dict[str, list[int]] = {}
    for values, name, trace_color, key in (
        (values_model, label_model, color, "model"),
        (values_retrained, "Retrained", MODEL_COLORS["retrained"], "retrained"),
    ):
        edges, counts = histogram_counts(values, metric, n_bins)
        below, above = clipped[key] = list(beyond_range(values, metric))
        centres = (edges[:-1] + edges[1:]) / 2
        notes = [""] * len(counts)
        if below:
            notes[0] = f", incl. {below} below {lo:g} (clipped)"
        if above:
            notes[-1] = f", incl. {above} above {hi:g} (clipped)"
        fig.add_trace(go.Bar(
            x=plain_list(centres), y=counts.tolist(), width=float(edges[1] - edges[0]), name=name,
            marker={"color": trace_color, "line": {"width": 0}}, opacity=0.55,
            customdata=[[float(a), float(b), note] for a, b, note in zip(edges[:-1], edges[1:], notes, strict=True)],
            hovertemplate=name + ": %{y} images in [%{customdata[0]:.2f}, %{customdata[1]:.2f}]%{customdata[2]}"
                                 "<extra></extra>",
        ))
    has_notes = _clipped_notes(fig, clipped, (lo, hi))
    if direction is not None:
        _mark_model_side(fig, direction, threshold, (lo, hi), color)
    fig.add_vline(x=threshold, line={"color": "#111827", "width": 2, "dash": "dash"}, name="threshold")
    right_half = threshold > (lo + hi) / 2  # the label goes toward the middle: never past the plot's edge
    fig.add_annotation(x=threshold, xref="x", y=LABEL_ROWS[1], yref="paper", yanchor="top",
                       text=f"threshold {threshold:.2f}", showarrow=False, xanchor="right" if right_half else "left",
                       xshift=-4 if right_half else 4, font={"size": 11}, name="threshold", bgcolor=LABEL_BACKGROUND)
    base_layout(fig, f"{label_model} vs Retrained on the forget images", METRIC_AXIS_TITLES[metric],
                 "Forget images", barmode="overlay", bargap=0)
    legend_below(fig)
    below = any(c[0] for c in clipped.values())
    above = any(c[1] for c in clipped.values())
    fig.update_xaxes(range=[lo, hi], **_edge_ticks(lo, hi, below, above))
    peak = max((max(trace.y, default=0) for trace in fig.data), default=0)
    fig.update_yaxes(range=[0, max(peak, 1) * (HEADROOM_NOTES if has_notes else HEADROOM)])
    return fig


def _clipped_notes(fig: go.Figure, clipped: dict[str, list[int]], span: tuple[float, float]) -> bool:
    """At each edge of ``span`` where values were clipped, a note counting them per model
    (``clipped``: ``{"model" | "retrained": [below, above]}``), written inward from the edge on
    the third label row; True when there is one."""
    drawn = False
    for index, x, anchor, sign in ((0, span[0], "left", "≤"), (1, span[1], "right", "≥")):
        counts_here = [clipped["model"][index], clipped["retrained"][index]]
        if any(counts_here):
            fig.add_annotation(
                x=x, xref="x", y=LABEL_ROWS[2], yref="paper", yanchor="top", xanchor=anchor,
                xshift=4 if anchor == "left" else -4, showarrow=False, align=anchor, name="clipped",
                text=f"{sign} {x:g}, in this bin:<br>{counts_here[0]} this model · {counts_here[1]} Retrained",
                font={"size": 10, "color": "#334155"}, bgcolor=LABEL_BACKGROUND,  # over the threshold line
            )
            drawn = True
    return drawn


def _mark_model_side(fig: go.Figure, direction: str, threshold: float, span: tuple[float, float],
                     color: str) -> None:
    """Shade the side of ``threshold`` the attack calls "this model" and label it at the side's
    outer edge, written inward (a label centred on a narrow side would cross the y axis)."""
    lo, hi = span
    x0, x1 = (max(lo, threshold), hi) if direction == "above_unlearn" else (lo, min(hi, threshold))
    fig.add_vrect(x0=x0, x1=x1, fillcolor=rgba(color, 0.08), line_width=0, layer="below", name="model_side")
    at_right = direction == "above_unlearn"
    fig.add_annotation(x=x1 if at_right else x0, xref="x", xanchor="right" if at_right else "left",
                       xshift=-4 if at_right else 4, y=LABEL_ROWS[0], yref="paper", yanchor="top", showarrow=False,
                       text="called “this model”", font={"color": color, "size": 11}, name="model_side",
                       bgcolor=LABEL_BACKGROUND)  # a side narrower than the label: the label masks the line


def attack_curves_figure(
    sweep: pd.DataFrame,
    threshold: float,
    direction: str,
    *,
    metric: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Attack score, FPR and FNR (traces 0-2) against the threshold, for one direction of a
    :func:`mucomp.privacy.threshold_sweep`; a vertical line marks ``threshold``. ``metric``
    only names the x axis. y axis [0, 1]."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    needed = {"threshold", "direction", "fpr", "fnr", "attack_score"}
    if not needed <= set(sweep.columns):
        raise ValueError(f"sweep lacks the columns {sorted(needed - set(sweep.columns))}; pass threshold_sweep(...)")
    rows = sweep[sweep["direction"] == direction].sort_values("threshold", kind="stable")
    if rows.empty:
        raise ValueError(f"the sweep has no rows for direction {direction!r}")
    x = plain_list(rows["threshold"].to_numpy(dtype=float))
    fig = go.Figure()
    for column, name, dash in (("attack_score", "Attack score", "solid"), ("fpr", "FPR", "dash"), ("fnr", "FNR", "dot")):
        fig.add_trace(go.Scatter(
            x=x, y=plain_list(rows[column].to_numpy(dtype=float)), mode="lines", name=name,
            line={"color": CURVE_COLORS[column], "dash": dash, "width": 2.5 if column == "attack_score" else 1.8},
            hovertemplate=name + " %{y:.3f} at threshold %{x:.2f}"
                          + (" (higher = less private)" if column == "attack_score" else "") + "<extra></extra>",
        ))
    fig.add_vline(x=float(threshold), line={"color": "#111827", "width": 1.5, "dash": "dash"}, name="threshold")
    readable = "values ≥ threshold called unlearned" if direction == "above_unlearn" else "values ≥ threshold called retrained"
    base_layout(
        fig,
        title or f"Attack score, FPR and FNR by threshold ({readable})",
        METRIC_AXIS_TITLES.get(metric, "Threshold") if metric else "Threshold",
        "Rate / score",  # short: a long title is cut at the figure's height (the hover says which way is private)
        hovermode="x unified",
    )
    legend_below(fig)
    fig.update_xaxes(range=[x[0], x[-1]])
    fig.update_yaxes(range=[0, 1.02])
    return fig


def probability_bars_figure(
    probs_a: Any,
    probs_b: Any,
    class_names: Sequence[str],
    label_a: str = "Model A",
    label_b: str = "Model B",
    *,
    forget_class: int | None = None,
    title: str = "Class probabilities",
    temperature: float = 1.0,
) -> go.Figure:
    """Grouped bars of both models' class probabilities for one image (traces 0 and 1, one bar
    per class, fractions in [0, 1]); the forget class gets the red band when given.
    ``temperature`` only names the y axis: every page shows T = 1 probabilities
    (``attack.probs``; the embedding's stored T = 2 ones converted by
    :func:`mucomp.compare.twin_embedding`)."""
    a = np.asarray(probs_a, dtype=np.float64)
    b = np.asarray(probs_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"probs_a and probs_b must be [C] arrays of one length, got {a.shape} and {b.shape}")
    names = check_names(class_names, a.size, "the probabilities")
    forget = check_forget(forget_class, a.size)
    fig = go.Figure()
    for values, label, color in ((a, label_a, MODEL_COLORS["A"]), (b, label_b, MODEL_COLORS["B"])):
        fig.add_trace(go.Bar(
            x=list(range(a.size)), y=plain_list(values), name=label, marker_color=color, customdata=names,
            hovertemplate=label + ": class %{customdata} %{y:.1%}<extra></extra>",
        ))
    base_layout(fig, title, "Class", f"Probability (softmax, T = {temperature:g})", barmode="group")
    legend_below(fig, bottom=130)  # the forget class's tick has two lines
    fig.update_xaxes(tickmode="array", tickvals=list(range(a.size)), ticktext=forget_tick_text(names, forget),
                     range=[-0.5, a.size - 0.5])
    fig.update_yaxes(range=[0, 1.0], tickformat=".0%")
    mark_forget_column(fig, forget)
    return fig


# ---------------------------------------------------------------------------------------------
# The on-demand audits

#: Colour of images the U-LiRA attack flags (LR > 0) and of the others.
FLAGGED_COLOR = FORGET_COLOR
UNFLAGGED_COLOR = "#94a3b8"


def signed_log(values: np.ndarray) -> np.ndarray:
    """sign(x) · log10(1 + |x|): likelihood ratios span many orders of magnitude (a shadow
    Gaussian can be very narrow), this keeps both signs and 0 readable on one axis."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.log10(1.0 + np.abs(values))


def ulira_lr_figure(ranking: pd.DataFrame, *, title: str = "Per-image likelihood ratio, ranked") -> go.Figure:
    """One bar per forget image, ranked by U-LiRA LR (most exposed first), on a signed log axis:
    red = LR > 0 (the attack says "unlearned by this method"), grey = LR <= 0 ("retrained").
    Hover: the image's dataset index, its LR and φ against the shadows' mean φ. ``customdata``
    starts with the dataset index."""
    fig = go.Figure()
    for flagged, name, color in ((True, "LR > 0: looks unlearned, not retrained", FLAGGED_COLOR),
                                 (False, "LR ≤ 0: looks retrained", UNFLAGGED_COLOR)):
        part = ranking[ranking["flagged"] == flagged]
        fig.add_trace(go.Bar(
            x=part["rank"].astype(int).tolist(), y=signed_log(part["lr"].to_numpy()).tolist(), name=name,
            marker={"color": color, "line": {"width": 0}},
            customdata=np.column_stack([part["index"].to_numpy(), part["lr"].to_numpy(), part["phi"].to_numpy(),
                                        part["mu_unlearned"].to_numpy(), part["mu_retrained"].to_numpy()]).tolist(),
            hovertemplate=("image #%{customdata[0]} (rank %{x})<br>LR %{customdata[1]:.3g}<br>φ %{customdata[2]:.2f} "
                           "(shadows: unlearned %{customdata[3]:.2f}, retrained %{customdata[4]:.2f})<extra></extra>"),
        ))
    base_layout(fig, title, "Forget images, ranked by LR (most exposed first)", "LR (signed log10(1 + |LR|))")
    fig.update_layout(bargap=0.05, barmode="overlay")
    legend_below(fig)
    fig.add_hline(y=0, line={"color": "#111827", "width": 1})
    return fig


#: Line styles of the relearning curves: solid = forget + retain images, dotted = retain only.
_DASH = {"forget": "solid", "retain_only": "dot"}


def relearn_figure(frame: pd.DataFrame, target: float, *, color: str = MODEL_COLORS["B"],
                   title: str = "Relearning: forget accuracy while fine-tuning") -> go.Figure:
    """Forget accuracy on the held-out forget images per fine-tuning step: this model (``color``)
    and the Retrained model (grey), each fine-tuned on a few forget images plus retain images
    (solid) and on retain images only (dotted); the dashed line (the last trace, named in the
    legend) is the target, half the Original's forget accuracy. ``frame``:
    :func:`mucomp.results.attack.relearn_frame`."""
    fig = go.Figure()
    for (who, curve), part in frame.groupby(["model", "curve"], sort=False):
        line_color = color if who == "model" else MODEL_COLORS["retrained"]
        fig.add_trace(go.Scatter(
            x=part["step"].astype(int).tolist(), y=part["forget_accuracy"].astype(float).tolist(),
            name=str(part["label"].iloc[0]), mode="lines+markers",
            line={"color": line_color, "dash": _DASH.get(str(curve), "solid"), "width": 2},
            marker={"size": 4},
            hovertemplate="step %{x}: forget accuracy %{y:.1%}<extra>%{fullData.name}</extra>",
        ))
    base_layout(fig, title, "Fine-tuning steps", "Accuracy on the other forget images")
    legend_below(fig)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    steps = frame["step"].astype(int)
    span = [int(steps.min()), int(steps.max())] if len(steps) else [0, 1]
    # A legend entry, not a label on the line: the curves cross the line, so a label there collides.
    fig.add_trace(go.Scatter(x=span, y=[float(target)] * 2, mode="lines", name="target: half the Original's",
                             line={"color": FORGET_COLOR, "dash": "dash", "width": 1}, hoverinfo="skip",
                             meta="target"))
    return fig
