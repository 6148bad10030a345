"""Pure plotly builders for the on-demand audits on the Attack page (U-LiRA, relearning).

Frames in (:func:`mucomp.audits.views.ulira_ranking`, :func:`mucomp.audits.views.relearn_frame`),
a new ``plotly.graph_objects.Figure`` out; nothing reads files, session state or Streamlit. The
conventions (template, model colours, plain lists in traces) are :mod:`mucomp.ui.figures`'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp.ui.figures import FORGET_COLOR, MODEL_COLORS, TEMPLATE

#: Colour of images the U-LiRA attack flags (LR > 0) and of the others.
FLAGGED_COLOR = FORGET_COLOR
UNFLAGGED_COLOR = "#94a3b8"


def signed_log(values: np.ndarray) -> np.ndarray:
    """sign(x) · log10(1 + |x|): likelihood ratios span many orders of magnitude (a shadow
    Gaussian can be very narrow), this keeps both signs and 0 readable on one axis."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.log10(1.0 + np.abs(values))


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE, title={"text": title, "x": 0.0, "xanchor": "left"}, xaxis_title=x_title,
        yaxis_title=y_title, margin={"l": 60, "r": 20, "t": 70, "b": 55},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    return fig


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
    _layout(fig, title, "Forget images, ranked by LR (most exposed first)", "LR (signed log10(1 + |LR|))")
    fig.update_layout(bargap=0.05, barmode="overlay")
    fig.add_hline(y=0, line={"color": "#111827", "width": 1})
    return fig


#: Line styles of the relearning curves: solid = forget + retain images, dotted = retain only.
_DASH = {"forget": "solid", "retain_only": "dot"}


def relearn_figure(frame: pd.DataFrame, target: float, *, color: str = MODEL_COLORS["B"],
                   title: str = "Relearning: forget accuracy while fine-tuning") -> go.Figure:
    """Forget accuracy on the held-out forget images per fine-tuning step: this model (``color``)
    and the Retrained model (grey), each fine-tuned on a few forget images plus retain images
    (solid) and on retain images only (dotted); the dashed line is the target, half the
    Original's forget accuracy. ``frame``: :func:`mucomp.audits.views.relearn_frame`."""
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
    _layout(fig, title, "Fine-tuning steps", "Forget accuracy on the other forget images")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.add_hline(y=float(target), line={"color": FORGET_COLOR, "dash": "dash", "width": 1},
                  annotation_text="half the Original's", annotation_position="bottom right")
    return fig
