"""Pure plotly figure builders for the pages: inputs in, a ``plotly.graph_objects.Figure`` out.

Every builder takes the plain values :mod:`mucomp.results` computes (DataFrames, arrays) and
returns a new Figure; none reads files, session state or Streamlit, so the same inputs give the
same figure JSON (tests read it). Numbers are written into traces as plain Python lists (not
numpy arrays), so the figure JSON stays readable (no base64 "bdata") in AppTest and browsers.

Conventions shared by all figures:

- Colours: :data:`CLASS_COLORS` gives every class one fixed colour (the same in both twin
  embedding plots); :data:`MODEL_COLORS` gives Model A, Model B, the Retrained and the Original
  model their colours; all readable on the light theme (:data:`TEMPLATE`).
- The forget class is marked wherever classes are listed (a red band or outline,
  :data:`FORGET_COLOR`) and its tick label is bold.
- Accuracies and probabilities are fractions drawn on ``[0, 1]`` axes formatted as percents;
  axis titles say what is measured and which direction is better.
- Scatter plots the user selects from put the row id first in ``customdata``;
  :func:`selection_indices` / :func:`selection_ids` read a Streamlit selection back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from mucomp import catalogue

TEMPLATE = "plotly_white"
#: One colour per class (d3 category10), cycled beyond 10 classes.
CLASS_COLORS: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
#: Colours of the models being compared.
MODEL_COLORS: dict[str, str] = {
    "A": "#0f766e",  # teal
    "B": "#7c3aed",  # violet
    "retrained": "#64748b",  # slate grey
    "original": "#b45309",  # amber
}
#: Colour of the forget-class marks (bands, outlines) and its translucent fill.
FORGET_COLOR = "#dc2626"
FORGET_FILL = "rgba(220, 38, 38, 0.10)"
#: Colour of points outside the active embedding filter, and their opacity.
DIM_COLOR = "#cbd5e1"
DIM_OPACITY = 0.35
#: Marker symbols in the embedding: forget-class images vs the others.
FORGET_SYMBOL = "x"
RETAIN_SYMBOL = "circle"
#: Colours of the attack curves.
CURVE_COLORS: dict[str, str] = {"attack_score": "#111827", "fpr": "#2563eb", "fnr": "#ea580c"}
#: Axis titles of the attack metrics (clipped-value units).
METRIC_AXIS_TITLES: dict[str, str] = {
    "entropy": "Entropy of softmax(z / 2), nats (higher = less certain)",
    "confidence": "Confidence: top-1 log-odds (higher = more certain)",
}
_TYPE_SYMBOLS = {"Original": "square", "Retrained": "star", "Unlearned": "circle", "Custom": "diamond", "Published": "triangle-up"}


def axis_title(column: str, forget: str | None = None) -> str:
    """The axis title of a Screen column: its label and which direction is better for the forget
    set ``forget`` (its canonical text; class sets by default), from the metric catalogue."""
    metric = catalogue.BY_COLUMN.get(column)
    label = metric.label if metric is not None else column
    words = catalogue.direction_words(column, forget)
    return f"{label} ({words})" if words else label


def class_color(k: int) -> str:
    """The fixed colour of class ``k`` (cycles beyond :data:`CLASS_COLORS`)."""
    return CLASS_COLORS[int(k) % len(CLASS_COLORS)]


def plain_list(values: Any) -> list:
    """A plain Python list with NaN -> None (plotly draws a gap)."""
    out = []
    for v in np.asarray(values).tolist():
        out.append(None if isinstance(v, float) and math.isnan(v) else v)
    return out


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def base_layout(fig: go.Figure, title: str, x_title: str, y_title: str, **extra: Any) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.0, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        margin={"l": 60, "r": 20, "t": 70, "b": 55},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        **extra,
    )
    return fig


#: Where :func:`legend_below` puts the legend: under the x-axis title (paper units of the plot
#: height; plotly widens the bottom margin when the legend needs more rows).
LEGEND_BELOW: dict[str, Any] = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}


def legend_below(fig: go.Figure, *, bottom: int = 110, top: int = 50) -> go.Figure:
    """Move the legend under the plot, left-aligned, and give it a ``bottom`` margin (px): long
    legend entries that wrap above the plot would run into a left-aligned title (the default of
    :func:`base_layout`). ``top`` (px) keeps room for the title alone."""
    fig.update_layout(legend=LEGEND_BELOW, margin={"t": top, "b": bottom})
    return fig


def check_names(class_names: Sequence[str], size: int, what: str) -> list[str]:
    names = [str(n) for n in class_names]
    if len(names) != size:
        raise ValueError(f"{len(names)} class names given for {size} classes in {what}")
    return names


def check_forget(forget_class: int | Sequence[int] | None, num_classes: int) -> tuple[int, ...]:
    """The forget classes as a tuple: () for None (a random or index forget set: no class is
    marked), (k,) for one class, the sorted classes for several."""
    if forget_class is None:
        return ()
    values = [forget_class] if isinstance(forget_class, (int, np.integer)) else list(forget_class)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < num_classes:
            raise ValueError(f"forget_class must lie in [0, {num_classes - 1}], got {forget_class!r}")
    return tuple(sorted(int(v) for v in values))


def meta_forget(forget: tuple[int, ...]) -> int | list[int] | None:
    """What a figure's ``meta["forget_class"]`` says: the class, the classes, or None."""
    return forget[0] if len(forget) == 1 else (list(forget) or None)


def tick_text(names: Sequence[str], forget: tuple[int, ...]) -> list[str]:
    return [f"<b>{n}</b>" if k in forget else n for k, n in enumerate(names)]


def forget_tick_text(names: Sequence[str], forget: tuple[int, ...]) -> list[str]:
    """Tick labels of a class axis whose forget classes are bold and labelled "forget" underneath
    (below the axis, so the label never covers a bar)."""
    return [f"<b>{n}</b><br><span style=\"color:{FORGET_COLOR}\">forget</span>" if k in forget else n
            for k, n in enumerate(names)]


def mark_forget_column(fig: go.Figure, forget: tuple[int, ...]) -> None:
    """A translucent band behind each forget class of the x axis (its tick says "forget":
    :func:`forget_tick_text`)."""
    for k in forget:
        fig.add_shape(
            type="rect", xref="x", yref="paper", x0=k - 0.5, x1=k + 0.5, y0=0, y1=1,
            fillcolor=FORGET_FILL, line={"width": 0}, layer="below", name="forget_class",
        )
