"""Figures of the Contrast page: class-wise accuracy, prediction matrices, the twin embedding,
layer-wise CKA, and the leakage and probe audits (pure plotly; conventions in
:mod:`mucomp.ui.figures.common`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp.embedding import FILTERS, filter_mask
from mucomp.results.contrast import retain_gap_of
from mucomp.ui.figures.common import (
    DIM_COLOR,
    DIM_OPACITY,
    FORGET_COLOR,
    FORGET_SYMBOL,
    MODEL_COLORS,
    RETAIN_SYMBOL,
    base_layout,
    check_forget,
    check_names,
    class_color,
    forget_tick_text,
    mark_forget_column,
    meta_forget,
    plain_list,
    tick_text,
)


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
    names = check_names(class_names, len(table), "the class-accuracy table")
    forget = check_forget(forget_class, len(names))
    gap = retain_gap_of(table.assign(is_forget=np.isin(np.arange(len(table)), forget)))
    diff = plain_list(table["diff"].to_numpy(dtype=float))
    fig = go.Figure()
    for column, label, color in (("acc_a", label_a, MODEL_COLORS["A"]), ("acc_b", label_b, MODEL_COLORS["B"])):
        fig.add_trace(go.Bar(
            x=list(range(len(names))),
            y=plain_list(table[column].to_numpy(dtype=float)),
            name=label,
            marker_color=color,
            customdata=[[n, d] for n, d in zip(names, diff, strict=True)],
            hovertemplate="Class %{customdata[0]}<br>" + label + ": %{y:.1%}<br>A − B: %{customdata[1]:+.1%}<extra></extra>",
        ))
    gap_text = "n/a" if math.isnan(gap) else f"{gap * 100:.1f} pp"
    base_layout(
        fig,
        title or f"Class-wise accuracy · average retain gap {gap_text}",
        "Class",
        "Accuracy (share recognised)",
        barmode="group",
        bargap=0.25,
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=forget_tick_text(names, forget),
                     range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    mark_forget_column(fig, forget)
    fig.update_layout(meta={"retain_gap": None if math.isnan(gap) else gap, "forget_class": meta_forget(forget)})
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
    names = check_names(class_names, len(table), "the class-accuracy table")
    forget = check_forget(forget_class, len(names))
    gap = retain_gap_of(table.assign(is_forget=np.isin(np.arange(len(table)), forget)))
    diff = table["diff"].to_numpy(dtype=float)
    custom = [[n, a, b] for n, a, b in zip(names, plain_list(table["acc_a"].to_numpy(dtype=float)),
                                            plain_list(table["acc_b"].to_numpy(dtype=float)), strict=True)]
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
    base_layout(
        fig,
        title or f"Class-wise accuracy, A − B · average retain gap {gap_text}",
        "Class",
        "Accuracy difference A − B (pp)",
        barmode="relative",
        bargap=0.35,
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=forget_tick_text(names, forget),
                     range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(range=[-top, top], tickformat="+.0%", zeroline=True, zerolinewidth=1.5, zerolinecolor="#334155")
    mark_forget_column(fig, forget)
    fig.update_layout(meta={"retain_gap": None if math.isnan(gap) else gap, "forget_class": meta_forget(forget)})
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
    names = check_names(class_names, z.shape[0], "the prediction matrix")
    forget = check_forget(forget_class, len(names))
    positions = list(range(len(names)))
    value_format = ".0%" if kind == "label" else ".2f"
    what = "share predicted" if kind == "label" else "mean probability"
    fig = go.Figure(go.Heatmap(
        z=[plain_list(row) for row in z],
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
    base_layout(fig, title, "Predicted class", "True class")
    ticks = {"tickmode": "array", "tickvals": positions, "ticktext": tick_text(names, forget)}
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

    ``points`` is :func:`mucomp.results.twin_embedding`. Traces, bottom to top:

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
        raise ValueError(f"points lacks the columns {missing}; pass mucomp.results.twin_embedding(...)")
    names = [str(n) for n in class_names]
    forget = check_forget(forget_class, len(names))
    if len(points) and (points[["true_class", "pred_a", "pred_b"]].to_numpy().max() >= len(names)):
        raise ValueError(f"points hold class ids beyond the {len(names)} class names given")
    fig = go.Figure(_embedding_traces(points, which, names, forget, filter_name, highlight))
    base_layout(
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
        all_x = np.concatenate([points["x_a"].to_numpy(dtype=float), points["x_b"].to_numpy(dtype=float)])
        all_y = np.concatenate([points["y_a"].to_numpy(dtype=float), points["y_b"].to_numpy(dtype=float)])
        fig.update_xaxes(range=_padded_range(all_x), **axis)
        fig.update_yaxes(range=_padded_range(all_y), **axis)
    return fig


def _embedding_traces(points: pd.DataFrame, which: str, names: list[str], forget: tuple[int, ...],
                      filter_name: str, highlight: Sequence[int] | None) -> list[go.Scatter]:
    """The traces of :func:`embedding_figure`, bottom to top."""
    pred_all = points[f"pred_{which}"].to_numpy(dtype=np.int64)
    x = points[f"x_{which}"].to_numpy(dtype=float)
    y = points[f"y_{which}"].to_numpy(dtype=float)
    is_forget = points["is_forget"].to_numpy(dtype=bool)
    shown = filter_mask(points, filter_name, model=which)
    custom = _embedding_customdata(points, names)

    def symbols(rows: np.ndarray) -> list[str]:
        return [FORGET_SYMBOL if is_forget[r] else RETAIN_SYMBOL for r in rows]

    def retain_first(rows: np.ndarray) -> np.ndarray:
        # Plotly draws a trace's legend key with its first point's symbol: a retain image first
        # keeps the forget marker out of a class's key (forget images then draw on top).
        return rows[np.argsort(is_forget[rows], kind="stable")]

    def scatter(rows: np.ndarray, **kwargs: Any) -> go.Scatter:
        return go.Scatter(x=plain_list(x[rows]), y=plain_list(y[rows]), mode="markers",
                          customdata=custom[rows], hovertemplate=_EMBEDDING_HOVER, **kwargs)

    traces = []
    hidden = retain_first(np.flatnonzero(~shown))
    if hidden.size:
        traces.append(scatter(hidden, name="Outside filter", opacity=DIM_OPACITY,
                              marker={"color": DIM_COLOR, "size": 5, "symbol": symbols(hidden)}))
    for k, name in enumerate(names):
        rows = retain_first(np.flatnonzero(shown & (pred_all == k)))
        if rows.size:
            traces.append(scatter(rows, name=name, legendgroup=f"class-{k}", marker={
                "color": class_color(k), "size": [8 if is_forget[r] else 6 for r in rows], "symbol": symbols(rows),
                "line": {"width": 0}}))
    if forget or is_forget.any():
        what = f"forget-class image ({', '.join(names[k] for k in forget)})" if forget else "forget-set image"
        traces.append(go.Scatter(x=[None], y=[None], mode="markers", name=what, hoverinfo="skip",
                                 marker={"color": "#111827", "symbol": FORGET_SYMBOL, "size": 8}))
    if highlight is not None and len(highlight):
        rows = np.flatnonzero(np.isin(points["index"].to_numpy(dtype=np.int64), [int(i) for i in highlight]))
        if rows.size:
            traces.append(scatter(rows, name="Selected", marker={
                "color": [class_color(pred_all[r]) for r in rows], "size": 13, "symbol": symbols(rows),
                "line": {"color": "#111827", "width": 2}}))
    return traces


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
    base_layout(fig, title, "Layer (input → output)", "CKA similarity to the reference (1 = identical)")
    # Below the plot: four long model names in one row at the top would run into the title.
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
                      margin={"t": 50, "b": 120})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=layers)
    fig.update_yaxes(range=[0, 1.02])
    return fig


# ---------------------------------------------------------------------------------------------
# Contrast: the audits


def probe_figure(frame: pd.DataFrame, layers: Sequence[str], colors: Mapping[str, str] | None = None) -> go.Figure:
    """Layer-wise decodability: probe ROC AUC (forget vs retain) per layer, one line per model.

    ``frame`` is :func:`mucomp.results.probe_frame`; ``layers`` input to output (x axis). A NaN
    AUC (a null stored for a random or index forget set, which has no test forget images) is a
    gap in its line. y axis fixed to [0.4, 1] (0.5 = not decodable); hover gives the excess over
    the Retrained.
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
    base_layout(fig, "Layer-wise decodability (probe AUC, forget vs retain)", "Layer", "ROC AUC")
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
    names = check_names(class_names, len(next(iter(leakages.values()))["mean_probability"]), "the leakage figures")
    forget = check_forget(forget_class, len(names))
    x = list(range(len(names)))
    first = next(iter(leakages.values()))
    bars = [(str(label), leak["mean_probability"], color)
            for (label, leak), color in zip(leakages.items(), (MODEL_COLORS["A"], MODEL_COLORS["B"]), strict=False)]
    bars.append(("Retrained", first["retrained_mean_probability"], MODEL_COLORS["retrained"]))
    fig = go.Figure()
    for label, values, color in bars:
        fig.add_trace(go.Bar(x=x, y=[float(v) for v in values], name=label, marker_color=color,
                             customdata=names, hovertemplate="%{customdata}: %{y:.1%}<extra>" + label + "</extra>"))
    base_layout(fig, "Where the forget images' probability goes (mean softmax, T = 1)", "Class",
                 "Mean probability", barmode="group", bargap=0.25)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=forget_tick_text(names, forget),
                     range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    mark_forget_column(fig, forget)
    return fig
