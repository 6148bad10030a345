"""The report's figures: the pages' own builders (:mod:`mucomp.ui.figures`,
:mod:`mucomp.ui.variance`) on the pages' own data (:mod:`mucomp.results`), serialised for a
static site. Nothing here draws a figure of its own.

Three kinds of work, each a picklable task so that worker processes can share it out:

- :func:`model_views`: one model in one role (A or B): its prediction matrix and its threshold
  attack against the Retrained model (the worst case: its privacy score is the table's PS). A
  model keeps its role in every default pair, so these figures are built once per model.
- :func:`pair_views`: what depends on both models: class-wise accuracy, class leakage, CKA,
  decodability and (when asked) the twin embedding.
- :func:`screen_views`: the scenario's Pareto view and its variance view.

Stored text is untrusted: plotly renders a subset of HTML in titles, legends and hovers (``<a
href>`` included), so every stored string handed to a builder goes through :func:`plot_text`
first, which plotly shows as the characters they are.

Speed and size: a plotly figure that names a template deep-copies it (most of a small figure's
build time), and its JSON carries the whole template (7 kB). In the report's own processes
:func:`light_templates` registers a small marker in each template's place; the
serialiser (:func:`figure_record`) turns the marker back into the template's name, and the site
holds each template once (``assets/templates.js``), put back by the script before plotly draws,
so the figure on screen is the one the app draws. Numbers are rounded to 6 significant digits
(more than any axis or hover shows).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mucomp.config import ScenarioDefinition
from mucomp.display_text import for_terminal
from mucomp.groups import members_of, retrained_by_train_seed, sweep_grid, varied_params
from mucomp.results import (
    IncompatibleResultsError,
    MissingBlockError,
    attack_view,
    cka_frame_for,
    cka_layers,
    class_accuracy,
    experiment_label,
    experiment_table,
    front_of_experiments,
    probe_frame,
    retain_gap_of,
    stored_audit,
    stored_prediction_matrix,
    twin_embedding,
)
from mucomp.results.imported import missing_figure_note
from mucomp.specs import get_spec
from mucomp.ui import figures, variance
from mucomp.ui.text import probe_reading

#: The key of the marker a light template leaves in a figure's layout.
TEMPLATE_MARK = "mucomp_report_template"
#: Significant digits of every number written into a figure record.
DIGITS = 6
#: The Pareto view's axes and colour (the Screen page's defaults).
PARETO = ("UA", "TRA", "PS")
#: The variance view's metrics, one pre-drawn block each (stored key -> column name).
VARIANCE_METRICS = {k: v for k, v in variance.GROUP_METRICS.items() if k != "leakage_js"}
#: Where a view cannot be drawn from what is stored (an older result, an import without a block).
VIEW_ERRORS = (MissingBlockError, IncompatibleResultsError, ValueError, KeyError, TypeError)


# ---------------------------------------------------------------------------------------------
# Untrusted text and serialisation


_PLOT_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})


def plot_text(value: object) -> str:
    """Stored text as plotly shows it literally: its pseudo-HTML tags made entities (plotly
    decodes ``&lt;`` and numeric entities back into characters), invisible controls made visible."""
    return for_terminal(value).translate(_PLOT_ENTITIES)


def _compact(value: Any) -> Any:
    """A figure's JSON-ready tree with numbers rounded to :data:`DIGITS` significant digits,
    NaN and infinities as None (plotly draws a gap) and numpy values as plain Python."""
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    if isinstance(value, np.ndarray):
        return _compact(value.tolist())
    if isinstance(value, np.generic):
        return _compact(value.item())
    raise TypeError(f"a figure holds a {type(value).__name__}, which the report cannot write")


def safe_json(value: Any) -> str:
    """JSON that is also safe inside an HTML ``<script>``: ASCII only, and ``<``, ``>``, ``&``
    written as escapes, so no stored string can close the script or open a comment."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_record(fig: Any) -> tuple[str, str | None]:
    """``(record JSON, template name)`` of a plotly figure: ``{"data", "layout"[, "template"]}``
    with a light template's marker (:func:`light_templates`) replaced by its name (None when the
    figure carries its template inline)."""
    spec = fig.to_plotly_json()
    layout = dict(spec.get("layout") or {})
    name = None
    template = layout.get("template")
    if isinstance(template, Mapping):
        meta = (template.get("layout") or {}).get("meta")
        if isinstance(meta, Mapping) and TEMPLATE_MARK in meta:
            name = str(meta[TEMPLATE_MARK])
            del layout["template"]
    record: dict[str, Any] = {"data": _compact(spec.get("data") or []), "layout": _compact(layout)}
    if name is not None:
        record["template"] = name
    return safe_json(record), name


@contextlib.contextmanager
def light_templates() -> Iterator[dict[str, Any]]:
    """Make plotly cheaper for the duration; yields the real templates by name (all restored
    afterwards). Two global changes, neither visible in a figure's record:

    - a small marker in place of every registered template (see the module docstring);
    - plotly's parser of property paths (``"xaxis_title_text"`` -> ``("xaxis", "title", "text")``,
      a pure function of its string, run thousands of times per figure) memoised: half of what
      is left of a small figure's build time.

    Only for a process the report owns (the ``mucomp report`` command, its worker processes): both
    are global, so the app's server must never enter this (its download runs the command in a
    process of its own)."""
    import plotly.basedatatypes as datatypes
    import plotly.graph_objects as go
    import plotly.io as pio

    saved = {name: pio.templates[name] for name in list(pio.templates)}
    parse = getattr(datatypes, "_str_to_dict_path_full", None)  # absent in another plotly: left alone
    try:
        if parse is not None:
            datatypes._str_to_dict_path_full = functools.lru_cache(maxsize=8192)(parse)
        for name in saved:
            pio.templates[name] = go.layout.Template(layout={"meta": {TEMPLATE_MARK: name}})
        yield saved
    finally:
        for name, template in saved.items():
            pio.templates[name] = template
        if parse is not None:
            datatypes._str_to_dict_path_full = parse


# ---------------------------------------------------------------------------------------------
# What a task gives back


@dataclass
class Views:
    """One task's output: ``figures`` slot -> (record JSON, template name), ``notes`` slot -> why
    that view is not drawn (stored text inside: escape it), ``values`` the numbers the page
    prints beside the figures, ``tables`` small frames the page renders as HTML tables."""

    figures: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def draw(self, slot: str, build: Callable[[], Any]) -> None:
        """Build one figure into ``slot``, or note why the stored results can't give it."""
        try:
            fig = build()
        except VIEW_ERRORS as err:
            self.notes[slot] = str(err)
            return
        if fig is not None:
            self.figures[slot] = figure_record(fig)


def _forget(result: Mapping) -> tuple[ScenarioDefinition, tuple[int, ...], list[str]]:
    definition = ScenarioDefinition.from_config(result["config"])
    return definition, tuple(definition.forget_classes), list(get_spec(definition.dataset).class_names)


def role_label(result: Mapping, role: str) -> str:
    """``"A: <experiment label>"`` as the pages name a model (escaped for plotly)."""
    return plot_text(f"{role}: {experiment_label(result)}")


# ---------------------------------------------------------------------------------------------
# Tasks


def model_views(result: Mapping, retrained: Mapping, role: str) -> Views:
    """One model in the role ``role`` ("A" / "B"): its training-split prediction matrix and its
    worst-case threshold attack against ``retrained`` (distribution and curves; its privacy score,
    attack score, FPR and FNR in ``values``)."""
    views = Views()
    _, forget, names = _forget(result)
    label = role_label(result, role)
    views.draw("matrix", lambda: figures.prediction_matrix_figure(
        stored_prediction_matrix(result, "train", "label"), names, label, "label", forget_class=forget))
    try:
        view = attack_view(result, retrained, "entropy", "worst_case")
    except VIEW_ERRORS as err:
        views.notes["attack"] = str(err)
        return views
    color = figures.MODEL_COLORS.get(role, figures.MODEL_COLORS["A"])
    views.draw("attack_distribution", lambda: figures.attack_distribution_figure(
        view.values_model, view.values_retrained, view.metric, view.threshold, label, direction=view.direction,
        color=color))
    views.draw("attack_curves", lambda: figures.attack_curves_figure(
        view.sweep, view.threshold, view.direction, metric=view.metric, title="Attack score, FPR and FNR by threshold"))
    views.values.update(metric=view.metric, threshold=view.threshold, direction=view.direction,
                        privacy_score=view.privacy_score, attack_score=view.attack_score, fpr=view.choice.fpr,
                        fnr=view.choice.fnr, success_rate=view.success_rate,
                        high_risk=int(view.high_risk.size), forget_images=int(view.indices.size))
    return views


def _escaped_cka(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["layer"] = [plot_text(layer) for layer in out["layer"]]
    return out


def pair_views(a: Mapping, b: Mapping, retrained: Mapping | None, *, embedding: bool) -> Views:
    """What depends on both models of a pair: class-wise accuracy on the training images (with
    the forget-set difference and the average retain gap in ``values``), class leakage, CKA
    against the Retrained model, layer-wise decodability and, with ``embedding``, the twin
    embedding (Model B's layout aligned onto A's)."""
    views = Views()
    definition, forget, names = _forget(a)
    labels = (role_label(a, "A"), role_label(b, "B"))
    try:
        table = class_accuracy(a, b, None, "train", class_names=names)
        views.draw("accuracy", lambda: figures.class_difference_figure(table, names, forget, *labels))
        views.values["retain_gap"] = retain_gap_of(table)
    except VIEW_ERRORS as err:
        views.notes["accuracy"] = str(err)
    ua_a, ua_b = (a.get("metrics") or {}).get("UA"), (b.get("metrics") or {}).get("UA")
    if isinstance(ua_a, (int, float)) and isinstance(ua_b, (int, float)):
        views.values["forget_difference"] = float(ua_a) - float(ua_b)
    if embedding:
        try:
            points = twin_embedding(a, b)
        except (*VIEW_ERRORS, OSError) as err:  # OSError: a data set whose labels are not on disk
            views.notes["embedding"] = str(err)
        else:
            for which, label in zip("ab", labels, strict=True):
                views.draw(f"embedding_{which}", lambda w=which, lb=label: figures.embedding_figure(
                    points, w, names, forget, "all", title=lb))
    leaks = {label: leak for label, result in zip(labels, (a, b), strict=True)
             if (leak := stored_audit(result, "leakage")) is not None}
    if leaks:
        views.draw("leakage", lambda: figures.leakage_figure(leaks, names, forget))
    else:
        views.notes["leakage"] = missing_figure_note((a, b), "class leakage")
    try:
        layers = cka_layers(a)
        escaped = [plot_text(layer) for layer in layers]
        views.draw("cka", lambda: figures.cka_figure(
            _escaped_cka(cka_frame_for(a, b, "retrained")), escaped, "CKA against the Retrained model", split="train",
            model_labels={"A": labels[0], "B": labels[1]}))
        _probe_views(views, a, b, retrained, labels, layers, definition)
    except VIEW_ERRORS as err:
        views.notes["cka"] = str(err)
    return views


def _probe_views(views: Views, a: Mapping, b: Mapping, retrained: Mapping | None, labels: tuple[str, str],
                 layers: list[str], definition: ScenarioDefinition) -> None:
    results = {labels[0]: a, labels[1]: b, **({"retrained": retrained} if retrained is not None else {})}
    frame = probe_frame(results, layers)
    if frame.empty:
        views.notes["probes"] = missing_figure_note((a, b), "decodability probes")
        return
    reading = probe_reading(frame["auc"], definition.forget_set, definition.dataset)
    if reading.note:
        views.notes["probes"] = reading.note
    if reading.chart:
        frame["layer"] = [plot_text(layer) for layer in frame["layer"]]
        views.draw("probes", lambda: figures.probe_figure(frame, [plot_text(layer) for layer in layers]))


def _escaped_table(table: pd.DataFrame) -> pd.DataFrame:
    """The experiment table with its text columns escaped for plotly (Pareto hovers)."""
    out = table.copy()
    for column in ("ID", "Method", "Type"):
        out[column] = [plot_text(v) for v in out[column]]
    return out


def screen_views(rows: Sequence[Mapping], family: Sequence[Mapping], forget_text: str,
                 class_names: Sequence[str]) -> Views:
    """The scenario's experiment table (``tables["experiments"]``, the raw values), its Pareto
    view and its variance view (per metric of :data:`VARIANCE_METRICS`: the group table, the
    spread across seeds, rank stability and one hyper-parameter sweep per method)."""
    from mucomp.groups import group_summaries

    views = Views()
    table = experiment_table(list(rows), class_names)
    views.tables["experiments"] = table
    front = front_of_experiments(table, PARETO, forget_text)
    views.draw("pareto", lambda: figures.pareto_figure(_escaped_table(table), front, x=PARETO[0], y=PARETO[1],
                                                       color=PARETO[2], forget=forget_text))
    summaries = group_summaries(list(family))
    views.values["groups"] = len(summaries)
    if not summaries:
        return views
    members = {g["group"]: members_of(list(family), g["group"]) for g in summaries}
    for metric in VARIANCE_METRICS:
        _variance_views(views, metric, summaries, members, list(family))
    return views


def _escaped_summary(summary: Mapping) -> dict:
    out = dict(summary)
    for key in ("method_label", "method", "group"):
        if out.get(key) is not None:
            out[key] = plot_text(out[key])
    return out


def _variance_views(views: Views, metric: str, summaries: list[dict], members: dict[str, list[dict]],
                    family: list[dict]) -> None:
    views.tables[f"groups_{metric}"] = variance.group_frame(summaries, metric)
    replicated = [g for g in summaries if g["n"] > 1]
    if replicated:
        shown = [_escaped_summary(g) for g in replicated]
        escaped_members = {plot_text(g["group"]): members[g["group"]] for g in replicated}
        views.draw(f"spread_{metric}", lambda: variance.spread_figure(shown, metric, escaped_members))
        ranks = variance.rank_frame({g["group"]: members[g["group"]] for g in replicated},
                                    {g["group"]: str(g.get("method_label") or g.get("method")) for g in replicated},
                                    metric, forget=replicated[0].get("forget"),
                                    retrained=retrained_by_train_seed(family, metric))
        if not ranks.empty:
            views.tables[f"ranks_{metric}"] = ranks
    for method in dict.fromkeys(g["method"] for g in summaries):
        chosen = [g for g in summaries if g["method"] == method]
        params = varied_params(chosen)
        if len(params) < 2:
            continue
        grid = sweep_grid(chosen, params[0], params[1], metric)
        shown_grid = {**grid, "x": [plot_text(v) for v in grid["x"]], "y": [plot_text(v) for v in grid["y"]]}
        title = plot_text(f"{method}: {VARIANCE_METRICS[metric]} over {params[0]} × {params[1]} (group means)")
        views.draw(f"sweep_{metric}_{method}", lambda g=shown_grid, p=params, t=title: variance.sweep_figure(
            g, plot_text(p[0]), plot_text(p[1]), metric, t))
