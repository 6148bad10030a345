"""The report's HTML pages as strings: the overview, the definitions, one Screen page per scenario
and one Contrast / Attack page per pair. Every stored string goes through :func:`text` (HTML
escaping after invisible controls are made visible); the figures are ``div.fig`` placeholders
that the site's script draws from their ``figs/<hash>.js`` records.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from mucomp import __version__, catalogue
from mucomp.display_text import for_terminal
from mucomp.report.plan import Pair, ReportPlan, ScenarioPlan
from mucomp.results import METRIC_LABELS, PRIVACY_READING, compact_count, experiment_label
from mucomp.specs import get_spec
from mucomp.ui import tables
from mucomp.ui.text import contrast_words

#: Columns of the report's experiment table (the Screen page's), then the pair links.
TABLE_COLUMNS = tables.SHOWN_COLUMNS


def text(value: object) -> str:
    """Stored (untrusted) text for HTML: controls made visible, then escaped, quotes included."""
    return html.escape(for_terminal(value), quote=True)


def markdown_bold(value: str) -> str:
    """mucomp's own prose (``**bold**`` and ``*italic*`` its only markdown) for HTML, escaped."""
    def italic(part: str) -> str:
        pieces = part.split("*")
        return "".join(f"<i>{p}</i>" if k % 2 else p for k, p in enumerate(pieces)) if len(pieces) % 2 else part

    parts = text(value).split("**")
    return "".join(f"<b>{italic(p)}</b>" if k % 2 else italic(p) for k, p in enumerate(parts))


def scenario_words(plan: ScenarioPlan) -> str:
    """The scenario in words: data set, architecture when not the default, forget set, seeds."""
    d = plan.definition
    spec = get_spec(d.dataset)
    arch = "" if d.arch == spec.arch else f" ({d.arch})"
    data = f" · data seed {d.data_seed}" if d.data_seed else ""
    return f"{spec.label}{arch} · forget {d.forget_set.describe(spec)} · training seed {d.train_seed}{data}"


class Page:
    """One HTML page under construction: its body and the figure records it draws."""

    def __init__(self, depth: int) -> None:
        self.depth = depth  # folders below the site's root: where the shared files are
        self.parts: list[str] = []
        self.figures: list[str] = []

    @property
    def root(self) -> str:
        return "../" * self.depth

    def add(self, *chunks: str) -> Page:
        self.parts.extend(chunks)
        return self

    def figure(self, record: str | None, note: str | None = None, caption: str | None = None) -> str:
        """A figure placeholder for the record hash ``record``; without one, ``note`` says why."""
        if record is None:
            return f'<p class="unavailable">{text(note or "Not available for these results.")}</p>'
        self.figures.append(record)
        below = f'<p class="caption">{text(caption)}</p>' if caption else ""
        return f'<div class="fig" data-fig="{text(record)}"></div>{below}'

    def render(self, title: str, crumbs: Sequence[tuple[str, str | None]]) -> str:
        nav = " › ".join(f'<a href="{text(href)}">{text(label)}</a>' if href else text(label) for label, href in crumbs)
        scripts = "".join(f'<script src="{self.root}figs/{text(h)}.js"></script>' for h in dict.fromkeys(self.figures))
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No request may leave the page: only this site's own files, inline styles for plotly.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; script-src 'self'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
            "connect-src 'none'; worker-src blob:\">"
            f"<title>{text(title)}</title>"
            f'<link rel="stylesheet" href="{self.root}assets/report.css"></head><body>'
            f'<header class="top"><nav>{nav}</nav></header><main>{"".join(self.parts)}</main>'
            f'<footer>Made by <code>mucomp report</code> (mucomp {text(__version__)}) from stored results; '
            f'definitions: <a href="{self.root}definitions.html">definitions.html</a>.</footer>'
            f'<script src="{self.root}assets/plotly.min.js"></script>'
            f'<script src="{self.root}assets/report.js"></script>'
            f'<script src="{self.root}assets/templates.js"></script>{scripts}</body></html>\n'
        )


# ---------------------------------------------------------------------------------------------
# Tables


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def cell_text(column: str, value: Any) -> str:
    """A table value as the Screen page formats it (:func:`mucomp.ui.tables.styled`)."""
    number = _number(value) if column in (*tables.PERCENT_COLUMNS, "RT", "LR", "Cost", "Epochs") else None
    if column in tables.PERCENT_COLUMNS:
        return "—" if number is None else f"{number:.1%}"
    if column == "RT":
        return "—" if number is None else f"{number:.2f} s"
    if column == "LR":
        return "—" if number is None else f"{number:g}"
    if column == "Cost":
        return compact_count(value)
    if column == "Epochs":
        return "—" if number is None else str(int(number))
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA else str(value)


def experiment_table_html(table: pd.DataFrame, plan: ScenarioPlan, unreproduced: Mapping[str, str]) -> str:
    """The sortable, filterable experiment table: the Screen page's columns, colours and formats,
    each header's tooltip from the catalogue, and each row's pair pages."""
    forget = plan.definition.forget_set.text
    view = tables.readable(table, None, unreproduced)
    colors = tables.cell_colors(table, list(catalogue.COLOR_GROUPS), forget, tables.retrained_values(table))
    columns = [c for c in TABLE_COLUMNS if c in view.columns]
    numeric = {c for c in columns if c in (*tables.PERCENT_COLUMNS, "RT", "LR", "Cost", "Epochs")}
    heads = [f'<th class="{"num" if c in numeric else "text"}" title="{text(catalogue.COLUMN_HELP.get(c, ""))}">'
             f'<button type="button" class="sort">{text(c)}</button></th>' for c in columns]
    heads.insert(1, '<th title="This experiment\'s pair pages: its contrast and attack against each model">Pairs</th>')
    links = _pair_links(plan)
    body = []
    for k, row in view.iterrows():
        cells = []
        for c in columns:
            value = row[c]
            style = colors.at[k, c] if c in colors.columns else ""
            style_attr = f' style="{text(style)}"' if style else ""
            if c in numeric:
                raw = _number(table.at[k, c])
                cells.append(f'<td class="num" data-v="{"" if raw is None else repr(raw)}"{style_attr}>'
                             f"{text(cell_text(c, table.at[k, c]))}</td>")
            else:  # a long label is cut by the style sheet; the tooltip holds it whole
                shown = text(cell_text(c, value))
                cells.append(f'<td{style_attr} title="{shown}">{shown}</td>')
        identifier = str(row["ID"])
        cells.insert(1, f'<td class="pairs">{" · ".join(links.get(identifier, [])) or "—"}</td>')
        body.append(f'<tr data-id="{text(identifier)}" data-method="{text(row["Method"])}">{"".join(cells)}</tr>')
    return (f'<div class="table-wrap"><table id="experiments"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _pair_links(plan: ScenarioPlan, limit: int = 3) -> dict[str, list[str]]:
    """Per experiment id, links to the pairs it is Model A of; an experiment that is only ever
    Model B (the Retrained model, in the default pairs of every experiment) gets its first
    ``limit`` and a pointer to the list of pairs."""
    labels = {str(r["id"]): experiment_label(r) for r in plan.rows}
    as_a: dict[str, list[str]] = {}
    as_b: dict[str, list[str]] = {}
    for pair in plan.pairs:
        as_a.setdefault(pair.a, []).append(f'<a href="{text(pair.page)}">vs {text(_short(labels, pair.b))}</a>')
        as_b.setdefault(pair.b, []).append(f'<a href="{text(pair.page)}">vs {text(_short(labels, pair.a))}</a>')
    links = dict(as_a)
    for identifier, found in as_b.items():
        if identifier not in links:
            more = len(found) - limit
            links[identifier] = found[:limit] + ([f'<a href="#pairs">{more} more</a>'] if more > 0 else [])
    return links


def _short(labels: Mapping[str, str], identifier: str) -> str:
    label = labels.get(identifier, identifier)
    return label if label in ("Original", "Retrained") else identifier


def frame_html(frame: pd.DataFrame) -> str:
    """A small frame (group summaries, ranks) as a plain HTML table, every cell escaped."""
    head = "".join(f"<th>{text(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{text(v if isinstance(v, str) else cell_text(str(c), v))}</td>"
                                    for c, v in row.items()) + "</tr>" for _, row in frame.iterrows())
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


# ---------------------------------------------------------------------------------------------
# Pages


def index_page(plan: ReportPlan, made_at: str) -> str:
    """The overview: every scenario with its counts, and where the definitions are."""
    page = Page(0)
    page.add("<h1>Machine-unlearning comparison</h1>",
             f'<p class="lead">A static report of {plan.experiment_count} stored experiments in '
             f"{len(plan.scenarios)} scenario{'s' if len(plan.scenarios) != 1 else ''}, made by mucomp on "
             f"{text(made_at)}: for each scenario the experiment table, the trade-off (Pareto) view and the "
             "variance across seeds; for each pair of models their contrast (class by class, layer by layer) and "
             "the membership-inference attack against the Retrained model.</p>")
    items = []
    for scenario in plan.scenarios:
        items.append(f'<li><a href="{text(scenario.folder)}/index.html">{text(scenario_words(scenario))}</a> '
                     f'<span class="caption">({text(scenario.key)}: {len(scenario.rows)} experiments, '
                     f"{len(scenario.pairs)} pairs)</span></li>")
    page.add("<h2>Scenarios</h2>", f"<ul>{''.join(items) or '<li>No experiments.</li>'}</ul>")
    if plan.skipped:
        skipped = "".join(f"<li><code>{text(k)}</code>: {text(v)}</li>" for k, v in plan.skipped.items())
        page.add(f'<div class="warning">Left out ({len(plan.skipped)}):<ul>{skipped}</ul></div>')
    page.add('<p>Every number is defined on the <a href="definitions.html">definitions page</a>.</p>')
    return page.render("mucomp report", [("mucomp report", None)])


def definitions_page() -> str:
    """Every metric of the tables with its direction and definition (the catalogue's), and how
    to read the privacy figures."""
    page = Page(0)
    page.add("<h1>Definitions</h1>",
             '<p class="lead">What each number measures and which direction is better. The full definitions, '
             "with where mucomp differs from the published comparator and the methods' papers, are in "
             f"<code>{text(catalogue.DEFINITIONS_PATH)}</code> of the mucomp repository.</p>")
    items = []
    for metric in (*catalogue.METRICS, *catalogue.ENSEMBLE_METRICS):
        images = catalogue.direction_words(metric.column, "random:10%")
        classes = catalogue.direction_words(metric.column)
        # The help says the direction already; where it differs for forgotten images, say both.
        way = "" if images == classes else f" <i>(forgotten classes: {text(classes)}; forgotten images: {text(images)})</i>"
        items.append(f"<dt>{text(metric.column)} · {text(metric.label)}</dt><dd>{text(metric.help)}{way}</dd>")
    others = [c for c in catalogue.COLUMN_HELP if c not in catalogue.BY_COLUMN]
    items += [f"<dt>{text(c)}</dt><dd>{text(catalogue.COLUMN_HELP[c])}</dd>" for c in others]
    page.add(f'<h2>Table columns</h2><dl class="defs">{"".join(items)}</dl>',
             f"<h2>Privacy figures</h2><p>{markdown_bold(PRIVACY_READING)}</p>",
             "<h2>The attack on the pair pages</h2><p>Each model is attacked against the Retrained model with the "
             "worst-case threshold: the strongest threshold over both features (entropy of softmax(z / 2) and the "
             "top-1 log-odds) on the 51-point grid, so its privacy score is the table's PS. The histograms show both "
             "models' feature values on the forget images; the curves show the attack score, FPR and FNR at every "
             "threshold.</p>")
    return page.render("Definitions · mucomp report", [("mucomp report", "index.html"), ("Definitions", None)])


def screen_page(plan: ScenarioPlan, table: pd.DataFrame, figures: Mapping[str, str], notes: Mapping[str, str],
                tables_: Mapping[str, pd.DataFrame], unreproduced: Mapping[str, str]) -> str:
    """The Screen page of one scenario: the table, the Pareto view, the variance view, the pairs."""
    from mucomp.report.figures import VARIANCE_METRICS

    page = Page(1)
    forget = plan.definition.forget_set.text
    page.add(f"<h1>{text(scenario_words(plan))}</h1>",
             f'<p class="lead">Scenario <code>{text(plan.key)}</code>: every reported experiment with its accuracy, '
             "efficiency and privacy figures. Click a column header to sort (again to reverse); type to filter.</p>")
    for identifier, message in unreproduced.items():
        page.add(f'<div class="warning">{text(tables.UNREPRODUCED_MARK)} <code>{text(identifier)}</code>: '
                 f"{text(message)}</div>")
    methods = "".join(f'<option value="{text(m)}">{text(m)}</option>' for m in sorted(table["Method"].astype(str).unique()))
    page.add("<h2>Experiments</h2>",
             '<div class="controls"><label>Filter<input id="table-filter" type="search" placeholder="id, method, '
             'type…"></label>'
             f'<label>Method<select id="method-filter"><option value="">All methods</option>{methods}</select></label>'
             '<span id="table-count" class="caption"></span></div>',
             experiment_table_html(table, plan, unreproduced),
             f'<div class="legend">{tables.color_legend_html(list(catalogue.COLOR_GROUPS), forget, TABLE_COLUMNS)}</div>',
             f"<details><summary>How to read the privacy columns (PS and MIA can disagree)</summary>"
             f"<p>{markdown_bold(PRIVACY_READING)}</p></details>")
    page.add("<h2>Trade-off across experiments</h2>",
             '<p class="caption">Each point is an experiment (square: Original, star: Retrained, for comparison): how '
             "well it forgets (x), what it keeps (y) and how private it is (colour). The ringed points are the best "
             "trade-offs: no other experiment is at least as good on all three and better on one.</p>",
             page.figure(figures.get("pareto"), notes.get("pareto")))
    page.add(_variance_section(page, figures, notes, tables_, VARIANCE_METRICS))
    page.add('<h2 id="pairs">Pairs</h2>', '<p class="caption">Model A against Model B: contrast and attack.</p><ul>'
             + "".join(f'<li><a href="{text(p.page)}">{text(_pair_words(plan, p))}</a></li>' for p in plan.pairs)
             + "</ul>")
    return page.render(f"{plan.key} · mucomp report",
                       [("mucomp report", "../index.html"), (scenario_words(plan), None)])


def _variance_section(page: Page, figures: Mapping[str, str], notes: Mapping[str, str],
                      frames: Mapping[str, pd.DataFrame], metrics: Mapping[str, str]) -> str:
    present = [m for m in metrics if f"groups_{m}" in frames]
    head = ("<h2>Replicates and variance</h2><p class=\"caption\">Runs that differ only in their seeds form a group: "
            "mean ± half-width of the 95 % Student-t interval over its n replicates; the gap is to the Retrained "
            "model of each replicate's own training seed. 'not resolved': the interval overlaps the best group's.</p>")
    if not present:
        return head + '<p class="unavailable">No unlearned experiments to group.</p>'
    options = "".join(f'<option value="{text(m)}">{text(metrics[m])}</option>' for m in present)
    blocks = []
    for metric in present:
        parts = [frame_html(frames[f"groups_{metric}"])]
        if f"spread_{metric}" in figures:
            parts.append(page.figure(figures[f"spread_{metric}"]))
        else:
            parts.append('<p class="unavailable">Every group has one run: the spread and the ranks need replicates.</p>')
        if f"ranks_{metric}" in frames:
            parts.append("<h3>Rank stability</h3>" + frame_html(frames[f"ranks_{metric}"]))
        for slot in (s for s in figures if s.startswith(f"sweep_{metric}_")):
            parts.append(page.figure(figures[slot]))
        blocks.append(f'<div class="metric-block" data-metric="{text(metric)}">' + "".join(parts) + "</div>")
    return (head + f'<div class="controls"><label>Metric<select id="variance-metric">{options}</select></label></div>'
            + "".join(blocks))


def _pair_words(plan: ScenarioPlan, pair: Pair) -> str:
    rows = {str(r["id"]): r for r in plan.rows}
    return f"A: {experiment_label(rows[pair.a])}  vs  B: {experiment_label(rows[pair.b])}"


def _stats(values: Mapping[str, Any], items: Iterable[tuple[str, str, str]]) -> str:
    cells = []
    for key, label, style in items:
        value = _number(values.get(key))
        if value is None:
            continue
        shown = f"{value * 100:+.1f} pp" if style == "pp" else f"{value * 100:.1f} pp" if style == "gap" else f"{value:.3f}"
        cells.append(f"<div><b>{text(shown)}</b>{text(label)}</div>")
    return f'<div class="stats">{"".join(cells)}</div>' if cells else ""


def pair_page(plan: ScenarioPlan, pair: Pair, pair_figures: Mapping[str, str], pair_notes: Mapping[str, str],
              pair_values: Mapping[str, Any], models: Mapping[str, tuple[Mapping[str, str], Mapping[str, str],
                                                                     Mapping[str, Any]]],
              embedding_note: str | None) -> str:
    """One pair's Contrast and Attack figures with their readings. ``models``: "A" / "B" ->
    (figure hashes, notes, values) of :func:`mucomp.report.figures.model_views`."""
    rows = {str(r["id"]): r for r in plan.rows}
    spec = get_spec(plan.definition.dataset)
    words = contrast_words(plan.definition.forget_set, spec.class_names)
    page = Page(1)
    a, b = experiment_label(rows[pair.a]), experiment_label(rows[pair.b])
    page.add(f"<h1>A: {text(a)} <span class=\"caption\">vs</span> B: {text(b)}</h1>",
             f'<p class="lead">{text(scenario_words(plan))}. Model A <code>{text(pair.a)}</code> against Model B '
             f'<code>{text(pair.b)}</code>, class by class, layer by layer, and each against the Retrained model '
             "under a membership-inference attack.</p>")
    figure = page.figure
    page.add("<h2>Class-wise accuracy</h2>", f'<p class="caption">{text(words.accuracy_help)}</p>',
             _stats(pair_values, [("forget_difference", words.forget_metric_label, "pp"),
                                  ("retain_gap", "Average retain gap", "gap")]),
             figure(pair_figures.get("accuracy"), pair_notes.get("accuracy"), words.difference_caption + " Training images."))
    page.add("<h2>Prediction matrices</h2>", f'<p class="caption">{text(words.matrix_help)}</p>',
             '<div class="grid2">' + "".join(figure(models[r][0].get("matrix"), models[r][1].get("matrix"))
                                              for r in ("A", "B")) + "</div>",
             f'<p class="caption">{text(words.matrix_caption)} Training images, share predicted.</p>')
    page.add("<h2>Embedding space</h2>", f'<p class="caption">{text(words.embedding_help)}</p>')
    if "embedding_a" in pair_figures or "embedding" in pair_notes:
        page.add('<div class="grid2">' + "".join(figure(pair_figures.get(f"embedding_{w}"), pair_notes.get("embedding"))
                                                 for w in "ab") + "</div>",
                 '<p class="caption">Colour: the class each model predicts; × marks the forget images. Model B\'s '
                 "layout is aligned onto Model A's, so the two read side by side.</p>")
    else:
        page.add(f'<p class="unavailable">{text(embedding_note or "Not drawn in this report.")}</p>')
    page.add("<h2>Class leakage</h2>", f'<p class="caption">{text(words.leakage_help)}</p>',
             figure(pair_figures.get("leakage"), pair_notes.get("leakage")))
    page.add("<h2>Layer-wise similarity</h2>", f'<p class="caption">{text(words.cka_help)}</p>',
             figure(pair_figures.get("cka"), pair_notes.get("cka"), words.cka_caption + " Training images."))
    page.add("<h2>Layer-wise decodability</h2>", f'<p class="caption">{text(words.probe_help)}</p>')
    if "probes" in pair_figures:
        page.add(figure(pair_figures["probes"]))
    if pair_notes.get("probes"):
        page.add(f'<p class="note">{text(pair_notes["probes"])}</p>')
    page.add("<h2>Attack</h2>", '<p class="caption">A membership-inference attack sees one number per forget image and '
             "guesses which model produced it: the one under test or the Retrained model. Strategy: the worst case "
             "(the strongest threshold over both features on the 51-point grid; its privacy score is the table's PS).</p>",
             '<div class="grid2">' + "".join(_attack_column(page, role, label, *models[role])
                                             for role, label in (("A", a), ("B", b))) + "</div>")
    return page.render(f"{pair.a} vs {pair.b} · mucomp report",
                       [("mucomp report", "../index.html"), (scenario_words(plan), "index.html"),
                        (f"{pair.a} vs {pair.b}", None)])


def _attack_column(page: Page, role: str, label: str, figures: Mapping[str, str], notes: Mapping[str, str],
                   values: Mapping[str, Any]) -> str:
    if "attack" in notes:
        return f'<div><h3>{text(role)}: {text(label)}</h3><p class="unavailable">{text(notes["attack"])}</p></div>'
    feature = METRIC_LABELS.get(str(values.get("metric")), str(values.get("metric")))
    return (f"<div><h3>{text(role)}: {text(label)}</h3>"
            + _stats(values, [("privacy_score", "Privacy score", "score"), ("attack_score", "Attack score", "score"),
                              ("fpr", "FPR", "score"), ("fnr", "FNR", "score")])
            + f'<p class="caption">Feature: {text(feature)} · threshold {_number(values.get("threshold")) or 0:.3f} · '
            f"{int(values.get('high_risk') or 0)} of {int(values.get('forget_images') or 0)} forget images attributed "
            "correctly (high risk).</p>"
            + page.figure(figures.get("attack_distribution"), notes.get("attack_distribution"))
            + page.figure(figures.get("attack_curves"), notes.get("attack_curves"),
                          "Attack score: 0 = no better than guessing, 1 = always right (lower is better for privacy). "
                          "FPR and FNR: the attack's two kinds of mistakes (higher is better for privacy).")
            + "</div>")
