"""Figures of the Screen page: per-epoch curves and the Pareto view (pure plotly; conventions in
:mod:`mucomp.ui.figures.common`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp import catalogue
from mucomp.ui.figures.common import FORGET_COLOR, axis_title, base_layout, plain_list

_TYPE_SYMBOLS = {"Original": "square", "Retrained": "star", "Unlearned": "circle", "Custom": "diamond",
                 "Published": "triangle-up"}


def epoch_figure(curves: pd.DataFrame, *, title: str = "Per-epoch progress", forget: str | None = None) -> go.Figure:
    """Forget accuracy (trace 0, left axis, [0, 1]) and the method's loss (trace 1, right axis)
    per epoch, from :func:`mucomp.compare.epoch_curves`. An empty frame gives an empty figure
    with a note. ``forget``: the scenario's forget-set text; for images the axis reads "closer to
    the Retrained model is better" (:func:`mucomp.catalogue.imagewise`), for classes "lower =
    more forgotten"."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    reading = "closer to the Retrained model is better" if catalogue.imagewise(forget) else "lower = more forgotten"
    base_layout(fig, title, "Epoch", f"Forget accuracy ({reading})")
    if curves is None or len(curves) == 0:
        fig.add_annotation(text="No per-epoch records for this experiment", x=0.5, y=0.5, xref="paper",
                           yref="paper", showarrow=False)
        return fig
    epochs = curves["epoch"].astype(int).tolist()
    fig.add_trace(go.Scatter(
        x=epochs, y=plain_list(curves["forget_accuracy"].to_numpy(dtype=float)), name="Forget accuracy",
        mode="lines+markers", line={"color": FORGET_COLOR, "width": 2},
        hovertemplate="epoch %{x}: forget accuracy %{y:.1%}<extra></extra>",
    ), secondary_y=False)
    fig.add_trace(go.Scatter(
        x=epochs, y=plain_list(curves["loss"].to_numpy(dtype=float)), name="Loss", mode="lines+markers",
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
    forget: str | None = None,
) -> go.Figure:
    """Scatter of the experiment table: ``x`` against ``y``, colour = ``color`` (trace 0, all
    rows); the rows of ``front_mask`` (:func:`mucomp.results.pareto_front`) again on top with a
    dark ring (trace 1, ``"Pareto front"``); the references once more on top (trace 2,
    ``"References"``, so no point hides them). Marker symbol = type (Retrained: star, Original:
    square). ``customdata`` = ``[ID, Method, Type, color value]`` (the id first, for selection).
    Colour scale fixed to [0, 1] for fractions, reversed when lower is better. ``forget``: the
    scenario's forget-set text, whose kind says which direction each axis title names
    (:func:`mucomp.catalogue.direction`); a colour column read as "close to the Retrained model"
    (MIA of an image forget set) is coloured by the absolute gap to the Retrained row's value
    (0 = best, reversed scale; the hover keeps the value itself)."""
    for column in (x, y, color, "ID", "Method", "Type"):
        if column not in table.columns:
            raise ValueError(f"the table has no column {column!r}; pass mucomp.results.experiment_table(...)")
    mask = np.asarray(front_mask, dtype=bool)
    if mask.shape != (len(table),):
        raise ValueError(f"front_mask must hold one bool per table row ({len(table)}), got shape {mask.shape}")
    custom = [[str(i), str(m), str(t), None if pd.isna(c) else float(c)]
              for i, m, t, c in zip(table["ID"], table["Method"], table["Type"], table[color], strict=True)]
    xs, ys = plain_list(table[x].to_numpy(dtype=float)), plain_list(table[y].to_numpy(dtype=float))
    symbols = [_TYPE_SYMBOLS.get(str(t), "circle") for t in table["Type"]]
    def shown(column: str, value: str) -> str:  # the hover says what the axes say: % for fractions
        return f"%{{{value}:.2f}} s" if column == "RT" else f"%{{{value}:.1%}}"

    hover = (f"%{{customdata[0]}} · %{{customdata[1]}} (%{{customdata[2]}})<br>{x}: {shown(x, 'x')}<br>"
             f"{y}: {shown(y, 'y')}<br>{color}: {shown(color, 'customdata[3]')}<extra></extra>")
    way = catalogue.direction(color, forget)
    colorscale = "Viridis" if way == "higher" else "Viridis_r"
    # A missing colour value (the references' RT, an older result's PS) is NaN: plotly refuses None
    # in a colour array, and draws a NaN point in the scale's missing colour.
    shade = [math.nan if row[3] is None else row[3] for row in custom]
    colour_title = axis_title(color, forget)
    if way == "retrained":  # forgotten images: the colour is the gap to the Retrained model's value (0 = best)
        reference = next((v for v, t in zip(shade, table["Type"], strict=True) if str(t) == "Retrained"), math.nan)
        shade = [abs(v - reference) for v in shade]
        colour_title = f"{catalogue.BY_COLUMN[color].label}: gap to the Retrained model (lower is better)"
    is_fraction = color != "RT"
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", name="Experiments", customdata=custom, hovertemplate=hover, showlegend=False,
        marker={
            "color": shade, "colorscale": colorscale, "size": 11, "symbol": symbols,
            "showscale": True, "colorbar": {"title": {"text": colour_title, "side": "right"}},
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
    base_layout(fig, title, axis_title(x, forget), axis_title(y, forget),
                 dragmode=False, clickmode="event+select", hovermode="closest")
    for axis_name, column in (("x", x), ("y", y)):
        if column != "RT":
            getattr(fig, f"update_{axis_name}axes")(tickformat=".0%")
    fig.update_layout(meta={"help": {c: catalogue.COLUMN_HELP.get(c, "") for c in (x, y, color)}})
    return fig
