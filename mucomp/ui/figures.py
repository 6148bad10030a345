"""Pure plotly figure builders for the pages: inputs in, a ``plotly.graph_objects.Figure`` out.

Every builder takes the plain values :mod:`mucomp.compare` computes (DataFrames, arrays) and
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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp.compare import COLUMN_HELP, METRIC_DIRECTIONS, retain_gap_of
from mucomp.embedding import FILTERS, filter_mask
from mucomp.privacy import DIRECTIONS, METRIC_RANGES

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
#: Axis titles of the Screen table's metric columns (for the Pareto plot).
TABLE_AXIS_TITLES: dict[str, str] = {
    "UA": "UA: forget-class train accuracy (lower is better)",
    "RA": "RA: retain train accuracy (higher is better)",
    "TUA": "TUA: forget-class test accuracy (lower is better)",
    "TRA": "TRA: retain test accuracy (higher is better)",
    "RT": "RT: unlearning time, s (lower is better)",
    "PS": "PS: privacy score (higher is better)",
    "MIA": "MIA-Efficacy (higher is better)",
    "Avg. Gap": "Avg. Gap to Retrained (lower is better)",
}
_TYPE_SYMBOLS = {"Original": "square", "Retrained": "star", "Unlearned": "circle", "Custom": "diamond", "Published": "triangle-up"}


# ---------------------------------------------------------------------------------------------
# Small helpers


def class_color(k: int) -> str:
    """The fixed colour of class ``k`` (cycles beyond :data:`CLASS_COLORS`)."""
    return CLASS_COLORS[int(k) % len(CLASS_COLORS)]


def _list(values: Any) -> list:
    """A plain Python list with NaN -> None (plotly draws a gap)."""
    out = []
    for v in np.asarray(values).tolist():
        out.append(None if isinstance(v, float) and math.isnan(v) else v)
    return out


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _base_layout(fig: go.Figure, title: str, x_title: str, y_title: str, **extra: Any) -> go.Figure:
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


def _check_names(class_names: Sequence[str], size: int, what: str) -> list[str]:
    names = [str(n) for n in class_names]
    if len(names) != size:
        raise ValueError(f"{len(names)} class names given for {size} classes in {what}")
    return names


def _check_forget(forget_class: int | Sequence[int] | None, num_classes: int) -> tuple[int, ...]:
    """The forget classes as a tuple: () for None (a random or index forget set: no class is
    marked), (k,) for one class, the sorted classes for several."""
    if forget_class is None:
        return ()
    values = [forget_class] if isinstance(forget_class, (int, np.integer)) else list(forget_class)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < num_classes:
            raise ValueError(f"forget_class must lie in [0, {num_classes - 1}], got {forget_class!r}")
    return tuple(sorted(int(v) for v in values))


def _meta_forget(forget: tuple[int, ...]) -> int | list[int] | None:
    """What a figure's ``meta["forget_class"]`` says: the class, the classes, or None."""
    return forget[0] if len(forget) == 1 else (list(forget) or None)


def _tick_text(names: Sequence[str], forget: tuple[int, ...]) -> list[str]:
    return [f"<b>{n}</b>" if k in forget else n for k, n in enumerate(names)]


def _forget_tick_text(names: Sequence[str], forget: tuple[int, ...]) -> list[str]:
    """Tick labels of a class axis whose forget classes are bold and labelled "forget" underneath
    (below the axis, so the label never covers a bar)."""
    return [f"<b>{n}</b><br><span style=\"color:{FORGET_COLOR}\">forget</span>" if k in forget else n
            for k, n in enumerate(names)]


def _mark_forget_column(fig: go.Figure, forget: tuple[int, ...]) -> None:
    """A translucent band behind each forget class of the x axis (its tick says "forget":
    :func:`_forget_tick_text`)."""
    for k in forget:
        fig.add_shape(
            type="rect", xref="x", yref="paper", x0=k - 0.5, x1=k + 0.5, y0=0, y1=1,
            fillcolor=FORGET_FILL, line={"width": 0}, layer="below", name="forget_class",
        )


# ---------------------------------------------------------------------------------------------
# Contrast: class-wise accuracy, prediction matrix


def class_accuracy_figure(
    table: pd.DataFrame,
    class_names: Sequence[str],
    forget_class: int,
    label_a: str = "Model A",
    label_b: str = "Model B",
    *,
    title: str | None = None,
) -> go.Figure:
    """Grouped bars of per-class accuracy, Model A beside Model B.

    ``table`` is :func:`mucomp.compare.class_accuracy` (one row per class, in class order):
    trace 0 draws ``acc_a``, trace 1 ``acc_b`` (fractions; NaN = no samples, drawn as a gap).
    The forget class gets a red band and a bold tick; the title reports the average retain gap
    (mean |acc_a - acc_b| over the retain classes, in percentage points).
    """
    names = _check_names(class_names, len(table), "the class-accuracy table")
    forget = _check_forget(forget_class, len(names))
    gap = retain_gap_of(table.assign(is_forget=np.isin(np.arange(len(table)), forget)))
    diff = _list(table["diff"].to_numpy(dtype=float))
    fig = go.Figure()
    for column, label, color in (("acc_a", label_a, MODEL_COLORS["A"]), ("acc_b", label_b, MODEL_COLORS["B"])):
        fig.add_trace(go.Bar(
            x=list(range(len(names))),
            y=_list(table[column].to_numpy(dtype=float)),
            name=label,
            marker_color=color,
            customdata=[[n, d] for n, d in zip(names, diff, strict=True)],
            hovertemplate="Class %{customdata[0]}<br>" + label + ": %{y:.1%}<br>A − B: %{customdata[1]:+.1%}<extra></extra>",
        ))
    gap_text = "n/a" if math.isnan(gap) else f"{gap * 100:.1f} pp"
    _base_layout(
        fig,
        title or f"Class-wise accuracy · average retain gap {gap_text}",
        "Class",
        "Accuracy (share recognised)",
        barmode="group",
        bargap=0.25,
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=_forget_tick_text(names, forget),
                     range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    _mark_forget_column(fig, forget)
    fig.update_layout(meta={"retain_gap": None if math.isnan(gap) else gap, "forget_class": _meta_forget(forget)})
    return fig


def class_difference_figure(
    table: pd.DataFrame,
    class_names: Sequence[str],
    forget_class: int,
    label_a: str = "Model A",
    label_b: str = "Model B",
    *,
    title: str | None = None,
) -> go.Figure:
    """Diverging bars of the per-class accuracy difference A − B (the published comparator's
    view): one bar per class from 0, up where Model A recognises more of the class, down where
    Model B does.

    ``table`` is :func:`mucomp.compare.class_accuracy`. Trace 0 (``"<label_a> higher"``, Model
    A's colour) holds the classes with ``diff >= 0``, trace 1 (``"<label_b> higher"``, Model B's
    colour) those with ``diff < 0`` (None elsewhere; NaN = no samples, drawn as a gap); the hover
    gives both accuracies. The y axis is symmetric around 0 (at least ±10 pp), in percentage
    points; the forget class is marked as in :func:`class_accuracy_figure`, and the title
    reports the average retain gap.
    """
    names = _check_names(class_names, len(table), "the class-accuracy table")
    forget = _check_forget(forget_class, len(names))
    gap = retain_gap_of(table.assign(is_forget=np.isin(np.arange(len(table)), forget)))
    diff = table["diff"].to_numpy(dtype=float)
    custom = [[n, a, b] for n, a, b in zip(names, _list(table["acc_a"].to_numpy(dtype=float)),
                                            _list(table["acc_b"].to_numpy(dtype=float)), strict=True)]
    hover = ("Class %{customdata[0]}<br>A − B: %{y:+.1%}<br>" + label_a + ": %{customdata[1]:.1%}<br>"
             + label_b + ": %{customdata[2]:.1%}<extra></extra>")
    fig = go.Figure()
    for keep, label, color in ((diff >= 0, label_a, MODEL_COLORS["A"]), (diff < 0, label_b, MODEL_COLORS["B"])):
        y = [float(d) if k else None for d, k in zip(diff, keep, strict=True)]
        fig.add_trace(go.Bar(
            x=list(range(len(names))), y=y, name=f"{label} higher", marker_color=color, customdata=custom,
            hovertemplate=hover, text=[None if v is None else f"{v * 100:+.0f}" for v in y],
            textposition="outside", cliponaxis=False, textfont={"size": 10},
        ))
    finite = np.abs(diff[np.isfinite(diff)])
    top = max(0.1, float(finite.max()) if finite.size else 0.0) * 1.15
    gap_text = "n/a" if math.isnan(gap) else f"{gap * 100:.1f} pp"
    _base_layout(
        fig,
        title or f"Class-wise accuracy, A − B · average retain gap {gap_text}",
        "Class",
        "Accuracy difference A − B (pp)",
        barmode="relative",
        bargap=0.35,
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=_forget_tick_text(names, forget),
                     range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(range=[-top, top], tickformat="+.0%", zeroline=True, zerolinewidth=1.5, zerolinecolor="#334155")
    _mark_forget_column(fig, forget)
    fig.update_layout(meta={"retain_gap": None if math.isnan(gap) else gap, "forget_class": _meta_forget(forget)})
    return fig


def prediction_matrix_figure(
    matrix: Any,
    class_names: Sequence[str],
    title: str,
    kind: str = "label",
    *,
    forget_class: int | None = None,
) -> go.Figure:
    """Heatmap of a ``[C, C]`` prediction matrix: rows = true class (top to bottom), columns =
    predicted class; each cell shows its value.

    ``kind="label"``: share of the true class's images predicted as the column class (percent);
    ``kind="conf"``: mean probability (T = 1) given to the column class. Colour scale fixed to
    [0, 1]. The forget class's row and column are outlined in red.
    """
    if kind not in ("label", "conf"):
        raise ValueError(f"kind must be 'label' or 'conf', got {kind!r}")
    z = np.asarray(matrix, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != z.shape[1]:
        raise ValueError(f"matrix must be square [C, C], got shape {z.shape}")
    names = _check_names(class_names, z.shape[0], "the prediction matrix")
    forget = _check_forget(forget_class, len(names))
    positions = list(range(len(names)))
    value_format = ".0%" if kind == "label" else ".2f"
    what = "share predicted" if kind == "label" else "mean probability"
    fig = go.Figure(go.Heatmap(
        z=[_list(row) for row in z],
        x=positions,
        y=positions,
        zmin=0.0,
        zmax=1.0,
        colorscale="Blues",
        texttemplate="%{z:" + value_format + "}",
        textfont={"size": 10},
        customdata=[[[names[t], names[p]] for p in positions] for t in positions],
        hovertemplate="True %{customdata[0]} → predicted %{customdata[1]}<br>" + what + ": %{z:.1%}<extra></extra>",
        colorbar={"title": {"text": "Share of images" if kind == "label" else "Mean probability"},
                  "tickformat": ".0%" if kind == "label" else ".1f"},
        xgap=1,
        ygap=1,
    ))
    _base_layout(fig, title, "Predicted class", "True class")
    ticks = {"tickmode": "array", "tickvals": positions, "ticktext": _tick_text(names, forget)}
    fig.update_xaxes(**ticks, side="bottom", constrain="domain")
    fig.update_yaxes(**ticks, autorange="reversed", scaleanchor="x", constrain="domain")
    c = len(names)
    outline = {"color": FORGET_COLOR, "width": 2}
    for k in forget:
        fig.add_shape(type="rect", xref="x", yref="y", x0=-0.5, x1=c - 0.5, y0=k - 0.5, y1=k + 0.5,
                      line=outline, name="forget_row")
        fig.add_shape(type="rect", xref="x", yref="y", x0=k - 0.5, x1=k + 0.5, y0=-0.5, y1=c - 0.5,
                      line=outline, name="forget_column")
    return fig


# ---------------------------------------------------------------------------------------------
# Contrast: embedding


def _top_probabilities(probs: np.ndarray, names: Sequence[str], k: int = 3) -> list[str]:
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [" · ".join(f"{names[c]} {p[c]:.0%}" for c in row) for p, row in zip(probs, order, strict=True)]


def _embedding_customdata(points: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Per point: [index, true name, A's prediction, A's confidence, B's prediction, B's
    confidence, A's top-3 probabilities, B's top-3 probabilities]."""
    c = len(names)
    cols_a = [f"prob_a_{k}" for k in range(c)]
    cols_b = [f"prob_b_{k}" for k in range(c)]
    top_a = _top_probabilities(points[cols_a].to_numpy(dtype=float), names) if set(cols_a) <= set(points) else [""] * len(points)
    top_b = _top_probabilities(points[cols_b].to_numpy(dtype=float), names) if set(cols_b) <= set(points) else [""] * len(points)
    rows = zip(
        points["index"].tolist(), points["true_class"].tolist(), points["pred_a"].tolist(),
        points["conf_a"].tolist(), points["pred_b"].tolist(), points["conf_b"].tolist(), top_a, top_b,
        strict=True,
    )
    out = np.empty((len(points), 8), dtype=object)  # object arrays validate fast and serialise as lists
    for r, (i, t, pa, ca, pb, cb, ta, tb) in enumerate(rows):
        out[r] = (int(i), names[t], names[pa], float(ca), names[pb], float(cb), ta, tb)
    return out


_EMBEDDING_HOVER = (
    "Image #%{customdata[0]} · true class %{customdata[1]}<br>"
    "Model A: %{customdata[2]} (%{customdata[3]:.0%}) — %{customdata[6]}<br>"
    "Model B: %{customdata[4]} (%{customdata[5]:.0%}) — %{customdata[7]}"
    "<extra>%{fullData.name}</extra>"
)


def _padded_range(values: np.ndarray, pad: float = 0.05) -> list[float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    span = hi - lo or 1.0
    return [lo - pad * span, hi + pad * span]


def embedding_figure(
    points: pd.DataFrame,
    which: str,
    class_names: Sequence[str],
    forget_class: int,
    filter_name: str = "all",
    highlight: Sequence[int] | None = None,
    title: str = "",
) -> go.Figure:
    """One of the twin embedding scatters (Model ``which`` = ``"a"`` or ``"b"``).

    ``points`` is :func:`mucomp.compare.twin_embedding` (or
    :func:`mucomp.embedding.embedding_points`). Traces, bottom to top:

    1. ``"Outside filter"`` (only when the filter hides points): the points
       :func:`mucomp.embedding.filter_mask` leaves out for this model, grey and faded;
    2. one trace per predicted class of this model (name = class name, colour =
       :func:`class_color`, the same in both twins), the points the filter keeps; forget-class
       images use :data:`FORGET_SYMBOL`, the others :data:`RETAIN_SYMBOL`;
    3. a legend-only key for the forget symbol;
    4. ``"Selected"`` (when ``highlight`` names dataset indices present): those points again,
       enlarged with a dark outline, on top.

    ``customdata`` per point: ``[dataset index, true class name, A's predicted name, A's
    confidence, B's predicted name, B's confidence, A's top-3, B's top-3]`` (the index first:
    :func:`selection_indices`). Both twins share the same axis ranges (the union of both
    layouts), so they read side by side. A click selects a point (``clickmode="event+select"``
    with ``dragmode="zoom"``: Streamlit's front end turns clicks off while the drag mode is
    ``"select"`` or ``"lasso"``); box and lasso select are in the chart's toolbar.
    """
    if which not in ("a", "b"):
        raise ValueError(f"which must be 'a' or 'b', got {which!r}")
    if filter_name not in FILTERS:
        raise ValueError(f"unknown filter {filter_name!r}; choose one of {', '.join(FILTERS)}")
    needed = ["index", "true_class", "pred_a", "pred_b", "is_forget", "x_a", "y_a", "x_b", "y_b",
              "status_a", "status_b", "conf_a", "conf_b"]
    missing = [c for c in needed if c not in points.columns]
    if missing:
        raise ValueError(f"points lacks the columns {missing}; pass mucomp.compare.twin_embedding(...)")
    names = [str(n) for n in class_names]
    forget = _check_forget(forget_class, len(names))
    pred_all = points[f"pred_{which}"].to_numpy(dtype=np.int64)
    if len(points) and (points[["true_class", "pred_a", "pred_b"]].to_numpy().max() >= len(names)):
        raise ValueError(f"points hold class ids beyond the {len(names)} class names given")
    x = points[f"x_{which}"].to_numpy(dtype=float)
    y = points[f"y_{which}"].to_numpy(dtype=float)
    is_forget = points["is_forget"].to_numpy(dtype=bool)
    shown = filter_mask(points, filter_name, model=which)
    custom = _embedding_customdata(points, names)

    def scatter(rows: np.ndarray, **kwargs: Any) -> go.Scatter:
        return go.Scatter(
            x=_list(x[rows]), y=_list(y[rows]), mode="markers",
            customdata=custom[rows], hovertemplate=_EMBEDDING_HOVER, **kwargs,
        )

    fig = go.Figure()
    hidden = np.flatnonzero(~shown)
    if hidden.size:
        fig.add_trace(scatter(
            hidden, name="Outside filter", opacity=DIM_OPACITY,
            marker={"color": DIM_COLOR, "size": 5,
                    "symbol": [FORGET_SYMBOL if is_forget[r] else RETAIN_SYMBOL for r in hidden]},
        ))
    for k, name in enumerate(names):
        rows = np.flatnonzero(shown & (pred_all == k))
        if rows.size == 0:
            continue
        fig.add_trace(scatter(
            rows, name=name, legendgroup=f"class-{k}",
            marker={"color": class_color(k), "size": [8 if is_forget[r] else 6 for r in rows],
                    "symbol": [FORGET_SYMBOL if is_forget[r] else RETAIN_SYMBOL for r in rows],
                    "line": {"width": 0}},
        ))
    if forget or is_forget.any():
        what = f"forget-class image ({', '.join(names[k] for k in forget)})" if forget else "forget-set image"
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=what,
            marker={"color": "#111827", "symbol": FORGET_SYMBOL, "size": 8}, hoverinfo="skip",
        ))
    if highlight is not None and len(highlight):
        wanted = {int(i) for i in highlight}
        index = points["index"].to_numpy(dtype=np.int64)
        rows = np.flatnonzero(np.isin(index, list(wanted)))
        if rows.size:
            fig.add_trace(scatter(
                rows, name="Selected",
                marker={"color": [class_color(pred_all[r]) for r in rows], "size": 13,
                        "symbol": [FORGET_SYMBOL if is_forget[r] else RETAIN_SYMBOL for r in rows],
                        "line": {"color": "#111827", "width": 2}},
            ))
    all_x = np.concatenate([points["x_a"].to_numpy(dtype=float), points["x_b"].to_numpy(dtype=float)])
    all_y = np.concatenate([points["y_a"].to_numpy(dtype=float), points["y_b"].to_numpy(dtype=float)])
    _base_layout(
        fig,
        title or f"Model {which.upper()} · {FILTERS[filter_name]}",
        "UMAP 1 (arbitrary units)",
        "UMAP 2 (arbitrary units)",
        dragmode="zoom",
        clickmode="event+select",
        hovermode="closest",
        uirevision=f"embedding-{which}",
    )
    fig.update_layout(legend={"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1.0, "yanchor": "top",
                              "title": {"text": f"Predicted ({which.upper()})"}, "itemsizing": "constant",
                              "font": {"size": 11}, "tracegroupgap": 0},
                      margin={"r": 10})
    axis = {"showticklabels": False, "zeroline": False, "showgrid": False}
    if len(points):
        fig.update_xaxes(range=_padded_range(all_x), **axis)
        fig.update_yaxes(range=_padded_range(all_y), **axis)
    return fig


def _point_id(point: Any) -> Any:
    if not isinstance(point, Mapping):
        return None
    custom = point.get("customdata")
    if isinstance(custom, (list, tuple)):
        return custom[0] if custom else None
    if isinstance(custom, Mapping):
        return custom.get("0", custom.get(0))
    return custom


def selection_ids(event: Any) -> list:
    """The first ``customdata`` value of every selected point of a Streamlit plotly selection.

    ``event`` is what ``st.plotly_chart(..., on_select="rerun")`` returns (or its
    ``["selection"]`` part, or the ``points`` list, or None). ``customdata`` may come back as a
    list (mixed columns) or as ``{"0": id}`` (one numeric column). Duplicates (a point that is
    also in the "Selected" trace) are dropped; order kept.
    """
    if event is None:
        return []
    points = event
    if isinstance(points, Mapping) or hasattr(points, "get"):
        points = points.get("selection", points)
        if isinstance(points, Mapping) or hasattr(points, "get"):
            points = points.get("points", [])
    seen, out = set(), []
    for point in points or []:
        value = _point_id(point)
        if value is None:
            continue
        key = (type(value).__name__, value) if not isinstance(value, (int, float)) else value
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def selection_indices(event: Any) -> list[int]:
    """:func:`selection_ids` as dataset indices (ints); non-numeric ids are skipped."""
    out = []
    for value in selection_ids(event):
        try:
            number = int(float(value))
        except (TypeError, ValueError):
            continue
        if number not in out:
            out.append(number)
    return out


# ---------------------------------------------------------------------------------------------
# Contrast: layer-wise similarity


def cka_figure(
    frame: pd.DataFrame,
    layers: Sequence[str],
    title: str,
    *,
    split: str | None = "train",
    model_labels: Mapping[str, str] | None = None,
) -> go.Figure:
    """Layer-wise CKA lines: one per model × part (forget solid, retain dashed).

    ``frame`` is :func:`mucomp.compare.cka_frame_for`; ``layers`` the layer names input to output
    (x axis, in that order). ``split`` keeps one split (``"train"`` / ``"test"``); ``None`` draws
    both (test lines with square markers). Models get :data:`MODEL_COLORS` ``A`` / ``B`` in
    order of appearance; ``model_labels`` maps the frame's ``model`` values to legend names.
    y axis fixed to [0, 1].
    """
    needed = {"model", "split", "part", "layer", "layer_index", "cka"}
    if not needed <= set(frame.columns):
        raise ValueError(f"frame lacks the columns {sorted(needed - set(frame.columns))}; pass cka_frame_for(...)")
    if split is not None and split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    layers = [str(layer) for layer in layers]
    data = frame if split is None else frame[frame["split"] == split]
    labels = dict(model_labels or {})
    colors = [MODEL_COLORS["A"], MODEL_COLORS["B"], MODEL_COLORS["original"], MODEL_COLORS["retrained"]]
    fig = go.Figure()
    models = list(dict.fromkeys(data["model"].tolist()))
    splits = ["train", "test"] if split is None else [split]
    for position, model in enumerate(models):
        for part, dash in (("forget", "solid"), ("retain", "dash")):
            for split_name in splits:
                rows = data[(data["model"] == model) & (data["part"] == part) & (data["split"] == split_name)]
                if rows.empty:
                    continue
                by_layer = dict(zip(rows["layer"].astype(str), rows["cka"].astype(float), strict=True))
                label = labels.get(model, str(model))
                name = f"{label} · {part}" + ("" if split is not None else f" ({split_name})")
                fig.add_trace(go.Scatter(
                    x=layers,
                    y=[None if math.isnan(by_layer.get(layer, math.nan)) else by_layer[layer] for layer in layers],
                    mode="lines+markers",
                    name=name,
                    line={"color": colors[position % len(colors)], "dash": dash, "width": 2},
                    marker={"symbol": "circle" if split_name == "train" else "square", "size": 7},
                    hovertemplate=name + "<br>layer %{x}: CKA %{y:.3f}<extra></extra>",
                ))
    _base_layout(fig, title, "Layer (input → output)", "CKA similarity to the reference (1 = identical)")
    # Below the plot: four long model names in one row at the top would run into the title.
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
                      margin={"t": 50, "b": 120})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=layers)
    fig.update_yaxes(range=[0, 1.02])
    return fig


# ---------------------------------------------------------------------------------------------
# Attack


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
    how many.
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
            x=_list(centres), y=counts.tolist(), width=float(edges[1] - edges[0]), name=name,
            marker={"color": trace_color, "line": {"width": 0}}, opacity=0.55,
            customdata=[[float(a), float(b), note] for a, b, note in zip(edges[:-1], edges[1:], notes, strict=True)],
            hovertemplate=name + ": %{y} images in [%{customdata[0]:.2f}, %{customdata[1]:.2f}]%{customdata[2]}"
                                 "<extra></extra>",
        ))
    for index, x, anchor, sign in ((0, lo, "left", "≤"), (1, hi, "right", "≥")):
        counts_here = [clipped["model"][index], clipped["retrained"][index]]
        if any(counts_here):
            fig.add_annotation(
                x=x, xref="x", y=0.7, yref="paper", xanchor=anchor, showarrow=False, align=anchor, name="clipped",
                text=f"{sign} {x:g}, in this bin:<br>{counts_here[0]} this model · {counts_here[1]} Retrained",
                font={"size": 10, "color": "#334155"}, bgcolor="rgba(255,255,255,0.8)",
            )
    if direction is not None:
        x0, x1 = (threshold, hi) if direction == "above_unlearn" else (lo, threshold)
        fig.add_vrect(x0=max(lo, x0), x1=min(hi, x1), fillcolor=_rgba(color, 0.08), line_width=0, layer="below",
                      name="model_side")
        fig.add_annotation(x=(max(lo, x0) + min(hi, x1)) / 2, xref="x", y=1.0, yref="paper", yanchor="top",
                           showarrow=False, text=f"called “{label_model}”", font={"color": color, "size": 11},
                           name="model_side")
    fig.add_vline(x=threshold, line={"color": "#111827", "width": 2, "dash": "dash"}, name="threshold")
    fig.add_annotation(x=threshold, xref="x", y=0.9, yref="paper", text=f"threshold {threshold:.2f}",
                       showarrow=False, xanchor="left", xshift=4, font={"size": 11})
    _base_layout(fig, f"{label_model} vs Retrained on the forget images", METRIC_AXIS_TITLES[metric],
                 "Forget images", barmode="overlay", bargap=0)
    below = any(c[0] for c in clipped.values())
    above = any(c[1] for c in clipped.values())
    fig.update_xaxes(range=[lo, hi], **_edge_ticks(lo, hi, below, above))
    return fig


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
    x = _list(rows["threshold"].to_numpy(dtype=float))
    fig = go.Figure()
    for column, name, dash in (("attack_score", "Attack score", "solid"), ("fpr", "FPR", "dash"), ("fnr", "FNR", "dot")):
        fig.add_trace(go.Scatter(
            x=x, y=_list(rows[column].to_numpy(dtype=float)), mode="lines", name=name,
            line={"color": CURVE_COLORS[column], "dash": dash, "width": 2.5 if column == "attack_score" else 1.8},
            hovertemplate=name + " %{y:.3f} at threshold %{x:.2f}<extra></extra>",
        ))
    fig.add_vline(x=float(threshold), line={"color": "#111827", "width": 1.5, "dash": "dash"}, name="threshold")
    readable = "values ≥ threshold called unlearned" if direction == "above_unlearn" else "values ≥ threshold called retrained"
    _base_layout(
        fig,
        title or f"Attack score, FPR and FNR by threshold ({readable})",
        METRIC_AXIS_TITLES.get(metric, "Threshold") if metric else "Threshold",
        "Rate / score (attack score: higher = less private)",
        hovermode="x unified",
    )
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
    names = _check_names(class_names, a.size, "the probabilities")
    forget = _check_forget(forget_class, a.size)
    fig = go.Figure()
    for values, label, color in ((a, label_a, MODEL_COLORS["A"]), (b, label_b, MODEL_COLORS["B"])):
        fig.add_trace(go.Bar(
            x=list(range(a.size)), y=_list(values), name=label, marker_color=color, customdata=names,
            hovertemplate=label + ": class %{customdata} %{y:.1%}<extra></extra>",
        ))
    _base_layout(fig, title, "Class", f"Probability (softmax, T = {temperature:g})", barmode="group")
    fig.update_xaxes(tickmode="array", tickvals=list(range(a.size)), ticktext=_forget_tick_text(names, forget),
                     range=[-0.5, a.size - 0.5])
    fig.update_yaxes(range=[0, 1.0], tickformat=".0%")
    _mark_forget_column(fig, forget)
    return fig


# ---------------------------------------------------------------------------------------------
# Screen


def epoch_figure(curves: pd.DataFrame, *, title: str = "Per-epoch progress") -> go.Figure:
    """Forget accuracy (trace 0, left axis, [0, 1]) and the method's loss (trace 1, right axis)
    per epoch, from :func:`mucomp.compare.epoch_curves`. An empty frame gives an empty figure
    with a note."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    _base_layout(fig, title, "Epoch", "Forget accuracy (lower = more forgotten)")
    if curves is None or len(curves) == 0:
        fig.add_annotation(text="No per-epoch records for this experiment", x=0.5, y=0.5, xref="paper",
                           yref="paper", showarrow=False)
        return fig
    epochs = curves["epoch"].astype(int).tolist()
    fig.add_trace(go.Scatter(
        x=epochs, y=_list(curves["forget_accuracy"].to_numpy(dtype=float)), name="Forget accuracy",
        mode="lines+markers", line={"color": FORGET_COLOR, "width": 2},
        hovertemplate="epoch %{x}: forget accuracy %{y:.1%}<extra></extra>",
    ), secondary_y=False)
    fig.add_trace(go.Scatter(
        x=epochs, y=_list(curves["loss"].to_numpy(dtype=float)), name="Loss", mode="lines+markers",
        line={"color": "#475569", "width": 1.5, "dash": "dash"},
        hovertemplate="epoch %{x}: loss %{y:.4g}<extra></extra>",
    ), secondary_y=True)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", secondary_y=False)
    fig.update_yaxes(title_text="Training loss (method's own)", secondary_y=True, showgrid=False, tickmode="auto")
    fig.update_xaxes(tickmode="linear", dtick=max(1, len(epochs) // 10))
    return fig


def _colour_range(custom: list, is_fraction: bool) -> dict:
    """The colour range of every point (fixed [0, 1] for fractions), so a trace drawn on top of
    the others colours its points the same way."""
    values = [row[3] for row in custom if row[3] is not None and math.isfinite(row[3])]
    if is_fraction or not values:
        return {"cmin": 0.0, "cmax": 1.0} if is_fraction else {}
    return {"cmin": min(values), "cmax": max(values)}


def pareto_figure(
    table: pd.DataFrame,
    front_mask: Any,
    *,
    x: str = "UA",
    y: str = "TRA",
    color: str = "PS",
    title: str = "Trade-off: forgetting vs accuracy vs privacy",
) -> go.Figure:
    """Scatter of the experiment table: ``x`` against ``y``, colour = ``color`` (trace 0, all
    rows); the rows of ``front_mask`` (:func:`mucomp.compare.pareto_front`) again on top with a
    dark ring (trace 1, ``"Pareto front"``); the references once more on top (trace 2,
    ``"References"``, so no point hides them). Marker symbol = type (Retrained: star, Original:
    square). ``customdata`` = ``[ID, Method, Type, color value]`` (the id first, for selection).
    Colour scale fixed to [0, 1] for fractions, reversed when lower is better."""
    for column in (x, y, color, "ID", "Method", "Type"):
        if column not in table.columns:
            raise ValueError(f"the table has no column {column!r}; pass mucomp.compare.experiment_table(...)")
    mask = np.asarray(front_mask, dtype=bool)
    if mask.shape != (len(table),):
        raise ValueError(f"front_mask must hold one bool per table row ({len(table)}), got shape {mask.shape}")
    custom = [[str(i), str(m), str(t), None if pd.isna(c) else float(c)]
              for i, m, t, c in zip(table["ID"], table["Method"], table["Type"], table[color], strict=True)]
    xs, ys = _list(table[x].to_numpy(dtype=float)), _list(table[y].to_numpy(dtype=float))
    symbols = [_TYPE_SYMBOLS.get(str(t), "circle") for t in table["Type"]]
    def shown(column: str, value: str) -> str:  # the hover says what the axes say: % for fractions
        return f"%{{{value}:.2f}} s" if column == "RT" else f"%{{{value}:.1%}}"

    hover = (f"%{{customdata[0]}} · %{{customdata[1]}} (%{{customdata[2]}})<br>{x}: {shown(x, 'x')}<br>"
             f"{y}: {shown(y, 'y')}<br>{color}: {shown(color, 'customdata[3]')}<extra></extra>")
    colorscale = "Viridis_r" if METRIC_DIRECTIONS.get(color) == "lower" else "Viridis"
    # A missing colour value (the references' RT, an older result's PS) is NaN: plotly refuses None
    # in a colour array, and draws a NaN point in the scale's missing colour.
    shade = [math.nan if row[3] is None else row[3] for row in custom]
    is_fraction = color != "RT"
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", name="Experiments", customdata=custom, hovertemplate=hover, showlegend=False,
        marker={
            "color": shade, "colorscale": colorscale, "size": 11, "symbol": symbols,
            "showscale": True, "colorbar": {"title": {"text": TABLE_AXIS_TITLES.get(color, color), "side": "right"}},
            "line": {"width": 0.5, "color": "#334155"},
            **({"cmin": 0.0, "cmax": 1.0} if is_fraction else {}),
        },
    ))
    rows = np.flatnonzero(mask)
    fig.add_trace(go.Scatter(
        x=[xs[r] for r in rows], y=[ys[r] for r in rows], mode="markers", name="Pareto front",
        customdata=[custom[r] for r in rows], hovertemplate=hover,
        marker={"color": "#111827", "size": 19, "symbol": "circle-open", "line": {"width": 2.5}},
    ))
    references = [r for r, t in enumerate(table["Type"]) if str(t) in ("Original", "Retrained")]
    if references:  # drawn again last, so other points never hide the star and the square
        fig.add_trace(go.Scatter(
            x=[xs[r] for r in references], y=[ys[r] for r in references], mode="markers", name="References",
            customdata=[custom[r] for r in references], hovertemplate=hover, showlegend=False,
            marker={"color": [shade[r] for r in references], "colorscale": colorscale, "showscale": False,
                    **_colour_range(custom, is_fraction), "size": 15,
                    "symbol": [symbols[r] for r in references], "line": {"width": 1, "color": "#334155"}},
        ))
    # No drag mode: the page draws it with selection_mode="points", and a figure whose dragmode is
    # "select" gets clickmode "event" from Streamlit's front end, so clicks would never select.
    _base_layout(fig, title, TABLE_AXIS_TITLES.get(x, x), TABLE_AXIS_TITLES.get(y, y),
                 dragmode=False, clickmode="event+select", hovermode="closest")
    for axis_name, column in (("x", x), ("y", y)):
        if column != "RT":
            getattr(fig, f"update_{axis_name}axes")(tickformat=".0%")
    fig.update_layout(meta={"help": {c: COLUMN_HELP.get(c, "") for c in (x, y, color)}})
    return fig


def probe_figure(frame: pd.DataFrame, layers: Sequence[str], colors: Mapping[str, str] | None = None) -> go.Figure:
    """Layer-wise decodability: probe ROC AUC (forget vs retain) per layer, one line per model.

    ``frame`` is :func:`mucomp.audits.views.probe_frame`; ``layers`` input to output (x axis).
    y axis fixed to [0.4, 1] (0.5 = not decodable); hover gives the excess over the Retrained.
    """
    needed = {"model", "layer", "auc", "excess"}
    if not needed <= set(frame.columns):
        raise ValueError(f"frame lacks the columns {sorted(needed - set(frame.columns))}; pass probe_frame(...)")
    palette = [MODEL_COLORS["A"], MODEL_COLORS["B"], MODEL_COLORS["original"]]
    fig = go.Figure()
    for position, model in enumerate(dict.fromkeys(frame["model"].tolist())):
        rows = frame[frame["model"] == model].set_index("layer")
        color = (colors or {}).get(model) or (MODEL_COLORS["retrained"] if model == "retrained"
                                              else palette[position % len(palette)])
        fig.add_trace(go.Scatter(
            x=list(layers), y=[float(rows["auc"].get(layer, math.nan)) for layer in layers],
            customdata=[float(rows["excess"].get(layer, math.nan)) for layer in layers],
            mode="lines+markers", name=str(model).replace("retrained", "Retrained"),
            line={"color": color, "dash": "dot" if model == "retrained" else "solid"},
            hovertemplate="%{x}: AUC %{y:.3f} (Retrained %{customdata:+.3f})<extra>%{fullData.name}</extra>",
        ))
    fig.add_hline(y=0.5, line={"color": DIM_COLOR, "dash": "dash"})
    _base_layout(fig, "Layer-wise decodability (probe AUC, forget vs retain)", "Layer", "ROC AUC")
    fig.update_yaxes(range=[0.4, 1.0])
    return fig


def leakage_figure(
    leakages: Mapping[str, Mapping[str, Any]], class_names: Sequence[str], forget_class: int
) -> go.Figure:
    """Class leakage: the mean probability the forget images get per class, grouped bars for each
    model and the Retrained model (``leakages``: legend name -> :func:`mucomp.audits.class_leakage`;
    the Retrained bars come from the first one's ``retrained_mean_probability``). The class axis
    marks the forget class as the class-accuracy figures do."""
    if not leakages:
        raise ValueError("no model has stored class-leakage figures")
    names = _check_names(class_names, len(next(iter(leakages.values()))["mean_probability"]), "the leakage figures")
    forget = _check_forget(forget_class, len(names))
    x = list(range(len(names)))
    first = next(iter(leakages.values()))
    bars = [(str(label), leak["mean_probability"], color)
            for (label, leak), color in zip(leakages.items(), (MODEL_COLORS["A"], MODEL_COLORS["B"]), strict=False)]
    bars.append(("Retrained", first["retrained_mean_probability"], MODEL_COLORS["retrained"]))
    fig = go.Figure()
    for label, values, color in bars:
        fig.add_trace(go.Bar(x=x, y=[float(v) for v in values], name=label, marker_color=color,
                             customdata=names, hovertemplate="%{customdata}: %{y:.1%}<extra>" + label + "</extra>"))
    _base_layout(fig, "Where the forget images' probability goes (mean softmax, T = 1)", "Class",
                 "Mean probability", barmode="group", bargap=0.25)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=_forget_tick_text(names, forget),
                     range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    _mark_forget_column(fig, forget)
    return fig
