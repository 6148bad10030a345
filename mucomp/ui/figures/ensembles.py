"""Figures of the Attack page's "Many models" tab (the NeurIPS 2023 challenge's forgetting quality
and EasyDUB's KLoM on ensembles): the ε buckets with their points, one image's two confidence
distributions, per-example KLoM and F method against method; pure plotly on the shared conventions
(:mod:`mucomp.ui.figures.common`), inputs from :mod:`mucomp.results.ensembles`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp.ui.figures.common import FORGET_COLOR, MODEL_COLORS, base_layout, legend_below, plain_list, rgba

#: Colour of the points each ε bucket earns (a line over the bars, right axis).
POINTS_COLOR = "#111827"
#: Colour of images / configurations that give the method away (ε past the resolution) and of the others.
EXPOSED_COLOR = FORGET_COLOR
BUCKET_COLOR = "#16a34a"
#: Histogram bins of one image's confidences (KLoM's own count of shared bins).
CONFIDENCE_BINS = 20


def epsilon_bucket_figure(buckets: pd.DataFrame, *, title: str = "Per-image ε, in the challenge's buckets",
                          color: str = BUCKET_COLOR) -> go.Figure:
    """Bars: forget images per ε bucket (:func:`mucomp.results.ensembles.epsilon_buckets`), the
    last bucket (ε past the resolution, no points) in red; a line on the right axis: the points an
    image in each bucket earns (2^-k). Hover: the bucket's range, count, share and its part of F."""
    fig = go.Figure()
    colors = [EXPOSED_COLOR if p == 0 else color for p in buckets["points"]]
    fig.add_trace(go.Bar(
        x=buckets["label"].tolist(), y=buckets["images"].astype(int).tolist(), name="Forget images in the bucket",
        marker={"color": colors, "line": {"width": 0}},
        customdata=np.column_stack([buckets["share"], buckets["points"], buckets["contribution"]]).tolist(),
        hovertemplate=("ε %{x}: %{y} images (%{customdata[0]:.1%})<br>%{customdata[1]:.3g} points each, "
                       "adds %{customdata[2]:.3f} to F<extra></extra>"),
    ))
    fig.add_trace(go.Scatter(
        x=buckets["label"].tolist(), y=buckets["points"].astype(float).tolist(), name="Points per image (right axis)",
        mode="lines+markers", yaxis="y2", line={"color": POINTS_COLOR, "width": 1.5, "dash": "dot"},
        marker={"size": 6}, hovertemplate="ε %{x}: %{y:.3g} points per image<extra></extra>",
    ))
    base_layout(fig, title, "ε bucket (privacy loss per image; lower is better)", "Forget images")
    fig.update_layout(bargap=0.15, yaxis2={"title": "Points per image", "overlaying": "y", "side": "right",
                                           "range": [0, 1.05], "dtick": 0.25, "showgrid": False})
    fig.update_layout(margin={"r": 60})
    return legend_below(fig)


def confidence_distribution_figure(distributions: Mapping[str, Any], *, label: str = "Unlearned",
                                   color: str = MODEL_COLORS["A"], title: str | None = None) -> go.Figure:
    """One forget image's confidence (log p_y − log Σ_{j≠y} p_j) under every unlearned model
    (``color``) and every Retrained model (grey), as overlaid histograms on
    :data:`CONFIDENCE_BINS` shared bins spanning both, with each side's median dashed: the picture
    of the challenge paper. ``distributions``: :func:`mucomp.results.ensembles.confidence_distributions`."""
    unlearned = np.asarray(distributions["unlearned"], dtype=float)
    retrained = np.asarray(distributions["retrained"], dtype=float)
    both = np.concatenate([unlearned, retrained])
    lo, hi = float(both.min()), float(both.max())
    if hi - lo < 1e-9:  # one value everywhere: a bin around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, CONFIDENCE_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for values, name, trace_color in ((unlearned, f"{label}: {unlearned.size} models", color),
                                      (retrained, f"Retrained: {retrained.size} models", MODEL_COLORS["retrained"])):
        counts, _ = np.histogram(values, bins=edges)
        fig.add_trace(go.Bar(
            x=plain_list(centres), y=counts.tolist(), width=float(edges[1] - edges[0]), name=name, opacity=0.55,
            marker={"color": trace_color, "line": {"width": 0}},
            hovertemplate=name.split(":")[0] + ": %{y} models near %{x:.2f}<extra></extra>",
        ))
        median = float(np.median(values))
        fig.add_vline(x=median, line={"color": trace_color, "width": 2, "dash": "dash"})
    index = distributions.get("index")
    title = title or (f"Image #{index}: ε {distributions.get('epsilon', float('nan')):.2f}, "
                      f"KLoM {distributions.get('klom', float('nan')):.2f}")
    base_layout(fig, title, "Confidence log p_y − log Σ_{j≠y} p_j (dashed: medians)", "Models")
    fig.update_layout(barmode="overlay", bargap=0.02)
    return legend_below(fig)


def klom_figure(frame: pd.DataFrame, chosen: int | None = None, *,
                title: str = "KLoM per forget image, largest first") -> go.Figure:
    """One bar per forget image (:func:`mucomp.results.ensembles.klom_frame`), largest KLoM first;
    the image ``chosen`` (train index) in red, the stored 95th percentile a dashed line (legend).
    ``customdata`` starts with the image's index (a click picks it)."""
    colors = [EXPOSED_COLOR if chosen is not None and int(i) == int(chosen) else MODEL_COLORS["retrained"]
              for i in frame["index"]]
    fig = go.Figure(go.Bar(
        x=frame["rank"].astype(int).tolist(), y=frame["klom"].astype(float).tolist(), name="KLoM of one image",
        marker={"color": colors, "line": {"width": 0}},
        customdata=np.column_stack([frame["index"], frame["epsilon"]]).tolist(),
        hovertemplate="image #%{customdata[0]}: KLoM %{y:.3f} nats, ε %{customdata[1]:.2f}<extra></extra>",
    ))
    p95 = frame.attrs.get("p95")
    if p95 is not None:
        span = [0.5, max(1, len(frame)) + 0.5]
        fig.add_trace(go.Scatter(x=span, y=[float(p95)] * 2, mode="lines", name=f"95th percentile: {p95:.3f}",
                                 line={"color": POINTS_COLOR, "dash": "dash", "width": 1.5}, hoverinfo="skip"))
    base_layout(fig, title, "Forget images, ranked by KLoM", "KLoM, nats (lower is better)")
    fig.update_layout(bargap=0.05)
    return legend_below(fig)


def method_scores_figure(scores: pd.DataFrame, noise_floor: float | None, *,
                         title: str = "Forgetting quality F per method configuration") -> go.Figure:
    """One horizontal bar per unlearned ensemble of the scenario
    (:func:`mucomp.results.ensembles.method_scores`), best F on top, the configuration of the
    chosen model outlined; a dashed line at the Retrained ensemble's self-score (F of two disjoint
    halves of it): what retraining itself scores, the noise floor a method can at best reach at
    this ensemble size. Hover: the challenge score, KLoM P95 and the ensembles' N."""
    ordered = scores.iloc[::-1]  # plotly draws the first category at the bottom
    fig = go.Figure(go.Bar(
        y=ordered["label"].astype(str).tolist(), x=ordered["F"].astype(float).tolist(), orientation="h",
        name="F of the configuration's ensemble",
        marker={"color": [rgba(BUCKET_COLOR, 0.9 if c else 0.45) for c in ordered["current"]],
                "line": {"color": ["#111827" if c else "rgba(0,0,0,0)" for c in ordered["current"]], "width": 2}},
        customdata=np.column_stack([ordered["score"], ordered["klom_p95"], ordered["n_models"],
                                    ordered["n_retrained"]]).tolist(),
        hovertemplate=("%{y}: F %{x:.3f}<br>score %{customdata[0]:.3f} · KLoM P95 %{customdata[1]:.2f}<br>"
                       "N = %{customdata[2]} unlearned, %{customdata[3]} Retrained<extra></extra>"),
    ))
    if noise_floor is not None:
        line = {"color": POINTS_COLOR, "dash": "dash", "width": 1.5}
        fig.add_vline(x=float(noise_floor), line=line)
        # The line's legend entry (a shape has none): a trace with no points, drawn only in the legend.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                                 name=f"Retrained against itself: F {noise_floor:.3f} (the noise floor)"))
    base_layout(fig, title, "F (higher is better; 1 = like retraining)", "")
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(automargin=True)
    height, top, bottom = max(320, 160 + 34 * len(scores)), 50, 130
    legend_below(fig, bottom=bottom, top=top)
    # A short plot: the legend goes a fixed 70 px under the axis (clear of its title), not a share of the height.
    fig.update_layout(height=height, legend={"y": -70 / (height - top - bottom)})
    return fig


__all__ = ["confidence_distribution_figure", "epsilon_bucket_figure", "klom_figure", "method_scores_figure"]
