"""The Screen page's experiment table as plain pandas (no Streamlit): readable owner and type
columns, sorting, the method filter and direction-aware colour scales. Tested without a browser."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mucomp.compare import METRIC_DIRECTIONS, compact_count

#: The colour-scale groups of the table: columns and a base colour (darker cell = better value).
COLOR_GROUPS: dict[str, tuple[tuple[str, ...], str]] = {
    "accuracy": (("UA", "RA", "TUA", "TRA"), "#2563eb"),
    "efficiency": (("RT",), "#ea580c"),
    "privacy": (("PS", "MIA", "Avg. Gap"), "#16a34a"),
}
#: Columns shown as percentages.
PERCENT_COLUMNS = ("UA", "RA", "TUA", "TRA", "PS", "MIA", "Avg. Gap")
#: Strongest tint of a cell (share of the group colour mixed into white), keeps text readable.
MAX_TINT = 0.6


def owner_label(owner: object, me: str | None) -> str:
    """``"you"`` for this session's experiments, ``"another session"`` for other sessions', ``"—"``
    when nobody owns it (references, command-line runs)."""
    if owner is None or (isinstance(owner, float) and math.isnan(owner)):
        return "—"
    return "you" if owner == me else "another session"


def readable(table: pd.DataFrame, me: str | None) -> pd.DataFrame:
    """The table as the page shows it: owners in words, creation time as text."""
    out = table.copy()
    out["Owner"] = [owner_label(o, me) for o in table["Owner"]]
    out["Created"] = table["Created"].dt.strftime("%Y-%m-%d %H:%M").fillna("—")
    return out


def filter_and_sort(table: pd.DataFrame, methods: Sequence[str] | None, sort_by: str | None,
                    ascending: bool = True) -> pd.DataFrame:
    """Rows whose Method is in ``methods`` (all when None or empty), sorted by ``sort_by`` (stable;
    missing values last; ``None`` keeps the table's order)."""
    out = table if not methods else table[table["Method"].isin(list(methods))]
    if sort_by and sort_by in out.columns:
        out = out.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last")
    return out.reset_index(drop=True)


def _mix(hex_color: str, share: float) -> str:
    h = hex_color.lstrip("#")
    rgb = [int(h[i:i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(255 + (c - 255) * share) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def goodness(values: pd.Series, column: str) -> np.ndarray:
    """Each value's place between the column's worst (0) and best (1) value, by the column's
    direction (:data:`mucomp.compare.METRIC_DIRECTIONS`); NaN stays NaN, a constant column is 1."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.full(x.shape, np.nan)
    lo, hi = finite.min(), finite.max()
    share = np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)
    if METRIC_DIRECTIONS.get(column) == "lower":
        share = 1.0 - share
    share[~np.isfinite(x)] = np.nan
    return share


def cell_colors(table: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """CSS per cell (``"background-color: #...; color: #111827"`` or ``""``) for the chosen
    colour groups: the better a value within its column, the stronger the group's colour."""
    css = pd.DataFrame("", index=table.index, columns=table.columns)
    for group in groups:
        columns, color = COLOR_GROUPS[group]
        for column in columns:
            if column not in table.columns:
                continue
            for row, share in zip(table.index, goodness(table[column], column), strict=True):
                if not math.isnan(share):
                    css.loc[row, column] = f"background-color: {_mix(color, 0.08 + MAX_TINT * share)}; color: #111827"
    return css


def styled(table: pd.DataFrame, groups: Sequence[str]):
    """A pandas Styler: percentages, seconds, learning rates and cost counts (``12.3k``)
    formatted; colour groups applied."""
    formats = {c: "{:.1%}" for c in PERCENT_COLUMNS if c in table.columns}
    formats.update({"RT": "{:.2f} s", "LR": "{:g}", "Cost": compact_count})
    styler = table.style.format(formats, na_rep="—")
    if groups:
        colors = cell_colors(table, groups)
        styler = styler.apply(lambda _: colors, axis=None)
    return styler
