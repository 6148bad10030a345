"""The Screen page's experiment table as plain pandas (no Streamlit): readable owner and type
columns, sorting, the method filter, direction-aware colour scales on fixed domains (and their
legend), column widths, and the Details page's key/value tables. Tested without a browser."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from mucomp.catalogue import BY_COLUMN, COLOR_GROUPS, ENSEMBLE_COLUMNS, FRACTION_COLUMNS, TYPE_LABELS, direction
from mucomp.results.screen import compact_count

#: Columns shown as percentages: the fractions of the catalogue but the ensemble scores (F and
#: the challenge score read as the challenge writes them, e.g. 0.062).
PERCENT_COLUMNS = tuple(c for c in FRACTION_COLUMNS if c not in ENSEMBLE_COLUMNS)
#: The KLoM colour scale (nats): darkest at 0, white at or above ln(1 / 1e-5), about the largest
#: KL a histogram pair can have with KLoM's floor of 1e-5 for an empty reference bin.
KLOM_SCALE = (0.0, 11.5)
#: Strongest tint of a cell (share of the group colour mixed into white), keeps text readable.
MAX_TINT = 0.6
MIN_TINT = 0.08
#: The RT colour scale: logarithmic, darkest at or below the first bound (seconds), white at or
#: above the second, fixed for every scenario and machine.
RT_SCALE_S = (0.1, 3600.0)
#: Columns the table shows, in order. ``Batch``, ``Created`` and ``Owner`` are in Details (the sort
#: still offers Created), so that every column, the seeds included, fits without scrolling.
SHOWN_COLUMNS = ("ID", "Type", "Base", "Method", "Seeds", "Epochs", "LR", "UA", "RA", "TUA", "TRA", "RT", "Cost",
                 "PS", "MIA", "Avg. Gap")
#: Column widths in screen pixels: with the row-selection column they fit the table's width in a
#: 1440 px wide window beside the sidebar (about 990 px). An experiment id (8 characters) fits;
#: the references' longer ids are in full in Details.
COLUMN_WIDTHS: dict[str, int] = {
    "ID": 78, "Type": 70, "Base": 62, "Method": 108, "Seeds": 50, "Epochs": 54, "LR": 42,
    "UA": 52, "RA": 52, "TUA": 52, "TRA": 52, "RT": 56, "Cost": 48, "PS": 52, "MIA": 52, "Avg. Gap": 68,
}
#: The audit columns (U-LiRA accuracy, relearn steps relative to the Retrained model, class
#: leakage JS), shown after :data:`SHOWN_COLUMNS` when the Screen's "Audit columns" toggle is on
#: (the table then scrolls sideways in a 1440 px window), and their widths.
AUDIT_COLUMNS = ("U-LiRA", "Relearn", "Leak JS")
AUDIT_COLUMN_WIDTHS: dict[str, int] = {"U-LiRA": 60, "Relearn": 62, "Leak JS": 62}
#: Widths of the ensemble columns (F, challenge score, KLoM P95), shown after the others when a
#: configuration of the scenario has an ensemble (:mod:`mucomp.results.ensembles`).
ENSEMBLE_COLUMN_WIDTHS: dict[str, int] = {"F": 52, "Score": 56, "KLoM": 56}
#: Text columns sized to their longest shown value: (screen pixels per character, fewest and most
#: pixels), measured on the table's font (a reference id or a long method label is never cut off).
FITTED_COLUMNS: dict[str, tuple[float, int, int]] = {"ID": (6.6, 78, 220), "Method": (6.3, 108, 320)}


def fitted_widths(view: pd.DataFrame) -> dict[str, int]:
    """The widths of :data:`FITTED_COLUMNS` in ``view``: their longest value's length times its
    pixels per character plus the cell's padding, within their bounds."""
    widths = {}
    for column, (per_char, low, high) in FITTED_COLUMNS.items():
        if column in view.columns and len(view):
            longest = max(len(str(value)) for value in view[column])
            widths[column] = int(min(high, max(low, round(longest * per_char) + 24)))
    return widths


def owner_label(owner: object, me: str | None) -> str:
    """``"you"`` for this browser's experiments, ``"another session"`` for other sessions',
    ``"—"`` when nobody owns it (references, command-line runs)."""
    if owner is None or (isinstance(owner, float) and math.isnan(owner)):
        return "—"
    return "you" if owner == me else "another session"


#: Put before the Type of a reference whose Hub file did not reproduce its published accuracy
#: (:func:`mucomp.results.unreproduced_references`); first, so a narrow column's ellipsis never hides it.
UNREPRODUCED_MARK = "⚠"


def readable(table: pd.DataFrame, me: str | None, unreproduced: Collection[str] = ()) -> pd.DataFrame:
    """The table as the page shows it: owners in words, creation time as text, and the Type of
    the references in ``unreproduced`` (experiment ids) marked (``"⚠ Original"``)."""
    out = table.copy()
    out["Owner"] = [owner_label(o, me) for o in table["Owner"]]
    if unreproduced:
        marked = table["ID"].isin(list(unreproduced))
        out.loc[marked, "Type"] = UNREPRODUCED_MARK + " " + table.loc[marked, "Type"]
    out["Created"] = table["Created"].dt.strftime("%Y-%m-%d %H:%M").fillna("—")
    return out


def retrained_values(table: pd.DataFrame) -> dict[str, float]:
    """The Retrained model's value of every metric column of the full experiment ``table`` (its
    ``Type`` as :func:`mucomp.results.experiment_table` writes it, before :func:`readable` marks
    it); NaN where the table has no Retrained row or the value is missing. The columns read as
    "close to the Retrained model" (:func:`mucomp.catalogue.direction`) are scored against these."""
    rows = table.loc[table["Type"] == TYPE_LABELS["retrained"]] if "Type" in table.columns else table.iloc[:0]
    out = {}
    for column in BY_COLUMN:
        value = pd.to_numeric(rows[column], errors="coerce").iloc[0] if len(rows) and column in rows.columns else math.nan
        out[column] = float(value) if pd.notna(value) else math.nan
    return out


def ascending_for(column: str, forget: str | None, best_first: bool) -> bool:
    """Whether a sort by ``column`` runs ascending to put the best rows first (``best_first``) or
    last, by the column's direction for the forget set ``forget``: lower values first for
    "lower", the smallest gap to the Retrained model first for "retrained"
    (:func:`filter_and_sort` sorts such a column by that gap)."""
    return (direction(column, forget) != "higher") == best_first


def filter_and_sort(table: pd.DataFrame, methods: Sequence[str] | None, sort_by: str | None,
                    ascending: bool = True, *, forget: str | None = None,
                    retrained: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Rows whose Method is in ``methods`` (all when None or empty), sorted by ``sort_by`` (stable;
    missing values last; ``None`` keeps the table's order). A column read as "close to the
    Retrained model" for the forget set ``forget`` is sorted by the absolute gap to its value in
    ``retrained`` (:func:`retrained_values`; by value when that is unknown)."""
    out = table if not methods else table[table["Method"].isin(list(methods))]
    if sort_by and sort_by in out.columns:
        reference = (retrained or {}).get(sort_by, math.nan)
        by_gap = direction(sort_by, forget) == "retrained" and math.isfinite(reference)
        out = out.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last",
                              key=(lambda values: (pd.to_numeric(values, errors="coerce") - reference).abs())
                              if by_gap else None)
    return out.reset_index(drop=True)


def _mix(hex_color: str, share: float) -> str:
    h = hex_color.lstrip("#")
    rgb = [int(h[i:i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(255 + (c - 255) * share) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def goodness(values: pd.Series, column: str, forget: str | None = None,
             retrained: Mapping[str, float] | None = None) -> np.ndarray:
    """Each value's place on the column's fixed scale, from worst (0) to best (1), by the column's
    direction for the forget set ``forget`` (:func:`mucomp.catalogue.direction`; a class set by
    default): fractions (:data:`FRACTION_COLUMNS`) on [0, 1] (class sets: UA 0 % -> 1, RA 100 %
    -> 1), RT on the log scale :data:`RT_SCALE_S` (0.1 s or less -> 1, an hour or more -> 0). A
    column read as "close to the Retrained model" (UA, MIA of an image forget set) is scored by
    the absolute gap to the Retrained model's value in ``retrained`` (:func:`retrained_values`):
    gap 0 -> 1, a gap of 100 points -> 0; NaN when that value is unknown. It depends on the value
    (and the Retrained model's) only, never on the other rows shown. NaN (a missing value, a
    column without a fixed scale) stays NaN."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    way = direction(column, forget)
    if way == "retrained":
        reference = (retrained or {}).get(column, math.nan)
        if not math.isfinite(reference):
            return np.full(x.shape, np.nan)
        share = 1.0 - np.clip(np.abs(x - reference), 0.0, 1.0)
        share[~np.isfinite(x)] = np.nan
        return share
    if column in FRACTION_COLUMNS:
        share = np.clip(x, 0.0, 1.0)
    elif column == "RT":
        lo, hi = RT_SCALE_S
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.clip(np.log(np.maximum(x, 1e-12) / lo) / np.log(hi / lo), 0.0, 1.0)
    elif column == "KLoM":
        share = np.clip((x - KLOM_SCALE[0]) / (KLOM_SCALE[1] - KLOM_SCALE[0]), 0.0, 1.0)
    else:
        return np.full(x.shape, np.nan)
    if way == "lower":
        share = 1.0 - share
    share[~np.isfinite(x)] = np.nan
    return share


def tint(color: str, share: float) -> str:
    """The cell colour of a value whose :func:`goodness` is ``share``: white mixed with ``color``."""
    return _mix(color, MIN_TINT + MAX_TINT * share)


#: Two hex digits of every channel value 0-255.
_HEX_BYTE = np.array([f"{c:02x}" for c in range(256)], dtype=object)
_CELL_CSS = "background-color: #{}; color: #111827"


def tints(color: str, shares: np.ndarray) -> np.ndarray:
    """:func:`tint` over a whole column at once: ``shares`` (n,) floats in [0, 1] or NaN ->
    (n,) object array of ``"#rrggbb"`` (``""`` where NaN). Same arithmetic as :func:`_mix`
    (float64, round half to even), so every cell gets exactly the scalar function's colour."""
    h = color.lstrip("#")
    rgb = np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=float)
    shares = np.asarray(shares, dtype=float)
    finite = ~np.isnan(shares)
    mixed = np.rint(255 + (rgb - 255) * (MIN_TINT + MAX_TINT * shares[finite])[:, None]).astype(int)  # (m, 3)
    out = np.full(shares.shape, "", dtype=object)
    out[finite] = "#" + _HEX_BYTE[mixed[:, 0]] + _HEX_BYTE[mixed[:, 1]] + _HEX_BYTE[mixed[:, 2]]
    return out


def cell_colors(table: pd.DataFrame, groups: Sequence[str], forget: str | None = None,
                retrained: Mapping[str, float] | None = None) -> pd.DataFrame:
    """CSS per cell (``"background-color: #...; color: #111827"`` or ``""``) for the chosen
    colour groups: the better a value on its column's fixed scale for the forget set ``forget``
    (:func:`goodness`, with the Retrained model's values ``retrained``), the stronger the group's
    colour. Whole columns at once (numpy): per-cell writes into a frame cost about 1 s for 1,000
    rows."""
    columns = {c: np.full(len(table), "", dtype=object) for c in table.columns}
    for group in groups:
        group_columns, color = COLOR_GROUPS[group]
        for column in group_columns:
            if column not in table.columns:
                continue
            colors = tints(color, goodness(table[column], column, forget, retrained))
            columns[column] = np.array([_CELL_CSS.format(c[1:]) if c else "" for c in colors], dtype=object)
    return pd.DataFrame(columns, index=table.index, columns=table.columns, dtype=object)


def styled(table: pd.DataFrame, groups: Sequence[str], forget: str | None = None,
           retrained: Mapping[str, float] | None = None):
    """A pandas Styler: percentages, seconds, learning rates and cost counts (``12.3k``)
    formatted; colour groups applied (:func:`cell_colors` for the forget set ``forget``)."""
    formats = {c: "{:.1%}" for c in PERCENT_COLUMNS if c in table.columns}
    formats.update({"RT": "{:.2f} s", "LR": "{:g}", "Cost": compact_count})
    formats.update({c: "{:.3f}" for c in ("U-LiRA", "Leak JS", "F", "Score") if c in table.columns})
    if "KLoM" in table.columns:
        formats["KLoM"] = "{:.2f}"
    if "Relearn" in table.columns:
        formats["Relearn"] = "{:.2f}×"
    styler = table.style.format(formats, na_rep="—")
    if groups:
        colors = cell_colors(table, groups, forget, retrained)
        styler = styler.apply(lambda _: colors, axis=None)
    return styler


#: Where a fraction column's colour is darkest, by its direction.
_DARKEST = {"lower": "0 %", "higher": "100 %", "retrained": "the Retrained model's value"}


def scale_note(group: str, forget: str | None = None, columns: Collection[str] | None = None) -> str:
    """What the darkest end of colour group ``group`` means for the forget set ``forget``, from the
    columns' directions (:func:`mucomp.catalogue.direction`): ``"UA, TUA darkest at 0 %, RA, TRA
    at 100 % (linear)"`` for a class set, UA and TUA at the Retrained model's value for images.
    With ``columns`` (those the table shows) only those are named; the ensemble columns (F, Score:
    darkest at 1; KLoM: at 0, white at :data:`KLOM_SCALE`'s top) after the others."""
    if group == "efficiency":
        return f"RT darkest at ≤ {RT_SCALE_S[0]:g} s, white at ≥ 1 h (log scale)"
    ends: dict[str, list[str]] = {}
    named = [c for c in COLOR_GROUPS[group][0] if columns is None or c in columns]
    for column in named:
        if column not in ENSEMBLE_COLUMNS:
            ends.setdefault(_DARKEST[direction(column, forget) or "higher"], []).append(column)
    parts = [f"{', '.join(names)} {'darkest ' if not k else ''}at {end}" for k, (end, names) in enumerate(ends.items())]
    scores = [c for c in ("F", "Score") if c in named]
    if scores:
        parts.append(f"{', '.join(scores)} {'darkest ' if not parts else ''}at 1")
    if "KLoM" in named:
        parts.append(f"KLoM {'darkest ' if not parts else ''}at 0, white at ≥ {KLOM_SCALE[1]:g}")
    return ", ".join(parts) + " (linear)"


#: What dark means per colour group for class forget sets, for the legend (:func:`scale_note`).
SCALE_NOTES: dict[str, str] = {group: scale_note(group) for group in COLOR_GROUPS}


def color_legend_html(groups: Sequence[str], forget: str | None = None,
                      columns: Collection[str] | None = None) -> str:
    """The table's colour legend as a small HTML block: per chosen group a white-to-colour swatch
    and what its darkest end means for the forget set ``forget`` (:func:`scale_note`, naming only
    ``columns`` when given: the ones shown); empty when no group is chosen."""
    if not groups:
        return ""
    items = []
    for group in COLOR_GROUPS:
        if group not in groups:
            continue
        color = COLOR_GROUPS[group][1]
        swatch = (f'<span style="display:inline-block;width:44px;height:10px;vertical-align:middle;'
                  f'border:1px solid #d1d5db;background:linear-gradient(to right, {tint(color, 0.0)}, '
                  f'{tint(color, 1.0)})"></span>')
        items.append(f'<span style="white-space:nowrap">{swatch} <b>{group.capitalize()}</b>: '
                     f'{scale_note(group, forget, columns)}</span>')
    return ('<div style="font-size:0.8rem;color:#4b5563;display:flex;flex-wrap:wrap;gap:0.3rem 1.4rem">'
            '<span>Colour: worse → better on fixed scales (a value keeps its colour whatever rows are shown).'
            '</span>' + "".join(items) + "</div>")


#: Readable names of a stored config's keys, in the order Details lists them.
CONFIG_LABELS: dict[str, str] = {
    "dataset": "Data set", "arch": "Architecture", "forget": "Forget set", "forget_class": "Forget class",
    "forget_indices": "Forget images", "train_seed": "Training seed", "data_seed": "Data seed",
    "unlearn_seed": "Unlearning seed", "method": "Method", "base": "Base model", "epochs": "Epochs",
    "lr": "Learning rate", "batch_size": "Batch size", "checkpoint": "Checkpoint", "weights_sha256": "Weights SHA-256",
}


def _plain(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} = {_plain(v)}" for k, v in value.items())
    return str(value)


def config_table(config: dict | None, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """A stored config as a two-column key/value table (``Setting``, ``Value``, both text):
    known keys first with readable names (:data:`CONFIG_LABELS`), each method parameter on its
    own row (``param: <name>``), other keys as stored; empty values left out. The forget class
    is given with its name when ``class_names`` are known (and the name is not the number)."""
    config = dict(config or {})
    params = config.pop("params", None) or {}
    rows: list[tuple[str, str]] = []
    ordered = [k for k in CONFIG_LABELS if k in config] + [k for k in config if k not in CONFIG_LABELS]
    for key in ordered:
        value = config[key]
        if value is None or value == "" or value == {} or value == []:
            continue
        text = f"{len(value)} listed training images" if key == "forget_indices" else _plain(value)
        if (key == "forget_class" and class_names is not None and isinstance(value, int)
                and 0 <= value < len(class_names) and str(class_names[value]) != text):
            text = f"{value} ({class_names[value]})"
        if key == "base" and value == "original":
            text = "Original"
        rows.append((CONFIG_LABELS.get(key, key), text))
    rows += [(f"param: {name}", _plain(value)) for name, value in params.items()]
    return pd.DataFrame(rows, columns=["Setting", "Value"], dtype=object)


def figures_table(result: dict) -> pd.DataFrame:
    """An experiment's headline figures as a key/value table (``Figure``, ``Value``, text): the
    accuracies, RT, both privacy scores (PS on the 51-point grid, PS_exact over every value),
    MIA-Efficacy and Avg. Gap; a missing figure (an older result) reads "—"."""
    metrics = result.get("metrics") or {}

    def number(key: str, style: str) -> str:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "—"
        return f"{value:.1%}" if style == "percent" else f"{value:.3f}" if style == "score" else f"{value:.2f} s"

    rows = [
        ("UA · RA", f"{number('UA', 'percent')} · {number('RA', 'percent')}"),
        ("TUA · TRA", f"{number('TUA', 'percent')} · {number('TRA', 'percent')}"),
        ("RT", number("RT", "seconds")),
        ("PS (51-point grid)", number("PS", "score")),
        ("PS_exact (every value as threshold)", number("PS_exact", "score")),
        ("MIA-Efficacy", number("MIA_efficacy", "percent")),
        ("Avg. Gap", number("avg_gap", "percent")),
    ]
    if "PS_published" in metrics:  # an imported comparator result: its own score, on other samples
        rows.append(("Published privacy score (comparator FQS, not comparable with PS)",
                     number("PS_published", "score")))
    evaluation = result.get("evaluation") or {}
    if evaluation.get("precision"):
        # Figures of an autocast (bf16 / fp16) evaluation may differ slightly from fp32 ones.
        rows.append(("Evaluated in", f"{evaluation['precision']} on {evaluation.get('device') or 'an unrecorded device'}"))
    created = result.get("created_at")
    if created:
        rows.append(("Created (UTC)", str(created).replace("T", " ")[:16]))
    return pd.DataFrame(rows, columns=["Figure", "Value"], dtype=object)
