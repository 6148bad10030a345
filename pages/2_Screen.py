"""Screen: every experiment of the scenario in one table (sort, filter, colour scales), choice of
Model A and Model B, details of one experiment (per-epoch curves, downloads, delete) and the
trade-off (Pareto) view across all experiments."""

import streamlit as st

from mucomp.catalogue import COLUMN_HELP, DEFINITIONS_POINTER, METRIC_DIRECTIONS, TYPE_LABELS
from mucomp.groups import (
    group_summaries,
    members_of,
    methods_by_count,
    retrained_by_train_seed,
    sweep_grid,
    varied_params,
)
from mucomp.report import report_zip
from mucomp.results import (
    PRIVACY_READING,
    cost_summary,
    epoch_curves,
    experiment_table,
    front_of_experiments,
    timings_table,
    unreproduced_references,
)
from mucomp.results.ensembles import ENSEMBLE_COLUMNS, ensemble_column_help, has_ensembles, with_ensemble_columns
from mucomp.results.imported import comparator_note
from mucomp.sharing import bundle_bytes, bundle_problem, hub
from mucomp.store import StoreError, deletion_refusal
from mucomp.store.ensembles import load_ensemble_results, retrained_result_for
from mucomp.ui import figures, session, tables, variance, widgets
from mucomp.ui.labels import experiment_labels
from mucomp.ui.text import epoch_help, md

session.setup("Screen")

KEY_DETAIL = "mucomp_screen_detail"
KEY_CONFIRM_DELETE = "mucomp_screen_confirm_delete"  # the id whose Delete awaits its confirmation
KEY_ORDER = "mucomp_screen_order"
KEY_PUSH_MESSAGE = "mucomp_screen_push_message"
METRIC_COLUMNS = ("UA", "RA", "TUA", "TRA", "RT", "PS", "MIA", "Avg. Gap")
UNREPRODUCED_HELP = (f"{tables.UNREPRODUCED_MARK}: a reference (or a published model) whose Hub file did not "
                     "reproduce the test accuracy its publishers measured (the reason is in Details).")


def _labels(listing: list[dict]) -> dict[str, str]:
    """Picker labels that tell same-method experiments apart (differing settings and seeds)."""
    return experiment_labels(listing)


def _table_rows(event) -> list[int]:
    try:
        return list(event["selection"]["rows"])
    except (KeyError, TypeError):
        return []


def pick_detail_from_selections() -> None:
    """A click on a table row or a Pareto point picks the experiment shown in Details."""
    rows = session.new_selection("screen_table", _table_rows)
    order = st.session_state.get(KEY_ORDER, [])
    if rows and rows[0] < len(order):
        st.session_state[KEY_DETAIL] = order[rows[0]]
    points = session.new_selection("screen_pareto", figures.selection_ids)
    if points:
        st.session_state[KEY_DETAIL] = str(points[0])


def _column_config(view, shown_columns=tables.SHOWN_COLUMNS, helps=None) -> dict:
    """Widths, tooltips (each ending with the README pointer; ``helps`` replaces a column's) and
    the pinned ID column."""
    config = {}
    widths = {**tables.COLUMN_WIDTHS, **tables.AUDIT_COLUMN_WIDTHS, **tables.ENSEMBLE_COLUMN_WIDTHS,
              **tables.fitted_widths(view)}
    for c in view.columns:
        if c not in shown_columns:
            config[c] = None  # hidden (Created: in Details; the sort still offers it)
        elif c in COLUMN_HELP:
            extra = f" {UNREPRODUCED_HELP}" if c == "Type" else ""
            config[c] = st.column_config.Column(c, help=f"{(helps or {}).get(c, COLUMN_HELP[c])}{extra} {DEFINITIONS_POINTER}",
                                                width=widths.get(c), pinned=c == "ID" or None)
    return config


def reference_check_warning(listing: list[dict], unreproduced: dict[str, str]) -> None:
    """One line above the table when a reference's Hub file did not reproduce its published
    accuracy (its row's Type is marked; Details gives the figures)."""
    if not unreproduced:
        return
    flagged = [r for r in listing if r["id"] in unreproduced]
    kinds = [TYPE_LABELS.get(r.get("kind"), "reference") for r in flagged if r.get("kind") != "published"]
    published = sum(r.get("kind") == "published" for r in flagged)
    parts = []
    if kinds:
        one = len(kinds) == 1
        parts.append(f"The Hub file{'' if one else 's'} of the {' and the '.join(kinds)} {'does' if one else 'do'} "
                     f"not reproduce the test accuracy {'its' if one else 'their'} publishers measured: this "
                     "scenario's figures are not comparable with published ones.")
    if published:
        parts.append(f"{published} published model{'' if published == 1 else 's'} here "
                     f"{'does' if published == 1 else 'do'} not reproduce the accuracies on {'its' if published == 1 else 'their'} "
                     "model card.")
    st.warning(" ".join(parts) + f" ({tables.UNREPRODUCED_MARK} in Type; Details says which figure differs.)",
               icon=":material/report:")


def table_section(table, unreproduced: dict[str, str], ensemble_helps: dict[str, str]):
    """Filters, sort, colour scales and the table itself (the references in ``unreproduced``
    marked; the ensemble columns, with the tooltips ``ensemble_helps``, when the scenario has
    ensembles); returns the shown rows."""
    ensemble_columns = ENSEMBLE_COLUMNS if has_ensembles(table) else ()
    # The last column stays empty: the table's toolbar appears there, above its top-right corner.
    left, middle, right, _ = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
    methods = left.multiselect(
        "Methods shown", sorted(table["Method"].unique()), key="screen_methods", placeholder="All methods",
        help="Show only the experiments of these methods (empty: all).",
    )
    sort_by = middle.selectbox(
        "Sort by", ["Created", *METRIC_COLUMNS, *ensemble_columns, *tables.AUDIT_COLUMNS, "Method", "LR", "Epochs"],
        key="screen_sort",
        help="Order the rows by this column (you can also click a column header).",
    )
    ranked = sort_by in METRIC_DIRECTIONS
    flipped = right.toggle("Best first" if ranked else "Newest first" if sort_by == "Created" else "Descending",
                           value=ranked, key=f"screen_desc_{sort_by}", help="Reverse the order.")
    forget, retrained = session.scenario().forget_set.text, tables.retrained_values(table)  # colours, order by kind
    ascending = tables.ascending_for(sort_by, forget, flipped) if ranked else not flipped
    groups = st.session_state.get("screen_colors", list(tables.COLOR_GROUPS))
    natural = sort_by == "Created" and ascending  # the table's own order: references first, then by time
    shown = tables.filter_and_sort(table, methods, None if natural else sort_by, ascending, forget=forget,
                                   retrained=retrained)
    st.session_state[KEY_ORDER] = shown["ID"].tolist()
    view = tables.readable(shown, session.owner(), unreproduced)
    shown_columns = [*tables.SHOWN_COLUMNS, *ensemble_columns,
                     *(tables.AUDIT_COLUMNS if st.session_state.get("screen_audit_columns") else ())]
    st.dataframe(
        tables.styled(view, groups or [], forget, retrained), hide_index=True,
        column_config=_column_config(view, shown_columns, ensemble_helps),
        key="screen_table", on_select="rerun", selection_mode="single-row", width="stretch", placeholder="—",
        column_order=[c for c in shown_columns if c in view.columns],
    )
    # The legend gets a row of its own: beside the controls, 1280 px left "Audit co…" and a cut control.
    control, audit_toggle = st.columns([3, 1], vertical_alignment="bottom")
    legend = st.container()
    audit_toggle.toggle("Audit columns", key="screen_audit_columns",
                        help="Add U-LiRA accuracy, relearn steps (relative to the Retrained model) and class leakage "
                             "(JS) to the table; U-LiRA and relearning are run on demand on the Attack page.")
    control.segmented_control(
        "Colour scales", list(tables.COLOR_GROUPS), selection_mode="multi", default=list(tables.COLOR_GROUPS),
        key="screen_colors", format_func=str.capitalize,
        help="Tint the accuracy (blue), efficiency (orange) and privacy (green) columns: the darker a cell, the "
             "better its value, on fixed scales (the legend beside says which).",
    )
    with legend:
        if groups:
            st.html(tables.color_legend_html(groups, forget, shown_columns))
    st.caption("Click a row to see its details below. Hover a column name for what it measures, which direction "
               "is better and where it is defined.")
    return shown


def model_pickers(listing: list[dict]) -> None:
    """Model A and Model B, bound to the session's own keys."""
    labels = _labels(listing)
    options = [None, *labels]
    columns = st.columns(2)
    for which, key, column, help_text in (
        ("a", session.KEY_MODEL_A, 0, "The first model to contrast and attack (often the Original or a baseline)."),
        ("b", session.KEY_MODEL_B, 1, "The second model to contrast and attack (often your new experiment)."),
    ):
        current = session.existing(st.session_state[key], listing)
        st.session_state[key] = current
        widget_key = f"screen_model_{which}"
        session.bind(widget_key, current)
        columns[column].selectbox(
            f"Model {which.upper()}", options, key=widget_key,
            format_func=lambda i: "— not chosen —" if i is None else f"{labels[i]}" + (
                "" if labels[i].endswith(i) else f" · {i}"),
            on_change=_picked, args=(key, widget_key), help=help_text,
        )


def _picked(key: str, widget_key: str) -> None:
    """A model picked as A or B is also the one Details opens on."""
    st.session_state[key] = st.session_state[widget_key]
    if st.session_state[widget_key] is not None:
        st.session_state[KEY_DETAIL] = st.session_state[widget_key]


def _set_model(which: str, experiment_id: str) -> None:
    session.set_model(which, experiment_id)


def _default_detail(ids: list[str]) -> str:
    """The experiment Details opens on: the table's selected row, else Model B, else Model A,
    else the newest."""
    rows = _table_rows(st.session_state.get("screen_table"))
    order = st.session_state.get(KEY_ORDER, [])
    for candidate in ([order[rows[0]]] if rows and rows[0] < len(order) else []) + [
            st.session_state[session.KEY_MODEL_B], st.session_state[session.KEY_MODEL_A]]:
        if candidate in ids:
            return candidate
    return ids[-1]


def _delete(experiment_id: str) -> None:
    st.session_state.pop(KEY_CONFIRM_DELETE, None)
    try:
        session.get_store().delete(experiment_id, owner=session.owner())
    except StoreError as err:
        st.session_state["screen_message"] = ("error", str(err))
        return
    for key in (session.KEY_MODEL_A, session.KEY_MODEL_B, KEY_DETAIL):
        if st.session_state.get(key) == experiment_id:
            st.session_state[key] = None
    st.session_state["screen_message"] = ("success", f"Deleted experiment {experiment_id}.")


def detail_buttons(store, chosen: str, result: dict, label: str, listing: list[dict]) -> str | None:
    """Use as A / B, the downloads and Delete (with its confirmation) of one experiment; returns
    why it can't be bundled (None when it can)."""
    buttons = st.columns(6)
    buttons[0].button("Use as Model A", key="screen_use_a", on_click=_set_model, args=("a", chosen),
                      help="Contrast and attack this experiment as Model A.")
    buttons[1].button("Use as Model B", key="screen_use_b", on_click=_set_model, args=("b", chosen),
                      help="Contrast and attack this experiment as Model B.")
    buttons[2].download_button(
        "Result JSON", data=lambda: store.result_bytes(chosen), file_name=f"{chosen}.json",
        mime="application/json", key="screen_download_json", on_click="ignore",
        help="Every figure of this experiment as stored (config, metrics, attack values, CKA, embedding).",
    )
    buttons[3].download_button(
        "Weights", data=lambda: store.weights_bytes(chosen) or b"", file_name=f"{chosen}.safetensors",
        mime="application/octet-stream", key="screen_download_weights", on_click="ignore",
        disabled=not store.has_weights(chosen), help="The model's weights (safetensors state dict).",
    )
    unbundled = bundle_problem(store, chosen, listing)
    buttons[4].download_button(
        "Bundle", data=lambda: bundle_bytes(store, [chosen]), file_name=f"{chosen}-bundle.zip",
        mime="application/zip", key="screen_download_bundle", on_click="ignore", disabled=unbundled is not None,
        help=f"Can't be bundled: {md(unbundled, 2000)}." if unbundled else
        "A reproducibility bundle: the config with every seed, data and forget-set hashes, the references' "
        "identities, code, environment, metrics and weights. `mucomp reproduce FILE` reruns it and diffs every metric.",
    )
    refusal = deletion_refusal(result, session.owner())
    buttons[5].button("Delete", key="screen_delete", on_click=st.session_state.__setitem__,
                      args=(KEY_CONFIRM_DELETE, chosen), disabled=refusal is not None,
                      help=f"Can't delete: {refusal}." if refusal else "Delete this experiment for everyone.")
    if st.session_state.get(KEY_CONFIRM_DELETE) == chosen and refusal is None:
        st.warning(f"Delete {md(label)} for every session? Its result and weights are removed from the "
                   "store; this can't be undone (download them first to keep a copy).", icon=":material/delete:")
        yes, no = st.columns([1, 5])
        yes.button("Yes, delete", key="screen_delete_confirm", type="primary", on_click=_delete, args=(chosen,))
        no.button("Keep it", key="screen_delete_keep", on_click=st.session_state.pop, args=(KEY_CONFIRM_DELETE, None))
    return unbundled


def details_section(listing: list[dict], unreproduced: dict[str, str]) -> None:
    """One experiment: set it as A or B, download it, delete it, its per-epoch curves."""
    labels = _labels(listing)
    ids = list(labels)
    detail = st.session_state.get(KEY_DETAIL)
    if detail not in labels:
        detail = _default_detail(ids)
        st.session_state[KEY_DETAIL] = detail
    session.bind("screen_detail", detail)
    chosen = st.selectbox(
        "Experiment", ids, key="screen_detail", format_func=lambda i: f"{labels[i]}" + (
            "" if labels[i].endswith(i) else f" · {i}"),
        on_change=lambda: st.session_state.__setitem__(KEY_DETAIL, st.session_state["screen_detail"]),
        help="The experiment whose details are shown (clicking a table row picks it too).",
    )
    result = next(r for r in listing if r["id"] == chosen)
    if chosen in unreproduced:  # stored text (an import may carry any): shown literally
        st.warning(md(unreproduced[chosen], 2000), icon=":material/report:")
    store = session.get_store()
    unbundled = detail_buttons(store, chosen, result, labels[chosen], listing)
    message = st.session_state.pop("screen_message", None)
    if message:
        (st.error if message[0] == "error" else st.success)(md(message[1], 2000))
    push_section(store, chosen, result, unbundled)
    settings, figures_column = st.columns(2)
    with settings.container(key="screen_detail_config"):  # st.table renders markdown: values escaped
        st.markdown("**Configuration**")
        st.table(tables.config_table(result.get("config"), s.spec.class_names).map(md).set_index("Setting"))
    with figures_column.container(key="screen_detail_figures"):
        st.markdown("**Figures**", help=f"{COLUMN_HELP['PS']} {DEFINITIONS_POINTER}")
        st.table(tables.figures_table(result).map(md).set_index("Figure"))
        owner = tables.owner_label(result.get("owner"), session.owner())
        st.caption(f"ID `{chosen}` · made by {'nobody: a reference or a command-line run' if owner == '—' else owner}")
    if cost_summary(result):
        st.caption(cost_summary(result), help=COLUMN_HELP["Cost"])
    stages = timings_table(result)
    if len(stages):
        with st.expander("Where the time went", key="screen_detail_timings"):
            st.dataframe(stages, hide_index=True, column_config={
                "Seconds": st.column_config.NumberColumn(format="%.2f")})
            st.caption("Measured in the process that ran the experiment; only the unlearning stage is RT.")
    curves = epoch_curves(result)
    if len(curves):
        forget = session.scenario().forget_set.text
        fig = session.memo("screen.epochs", (chosen, labels[chosen], forget), lambda: figures.epoch_figure(
            curves, title=f"Per-epoch progress of {labels[chosen]}", forget=forget))
        st.plotly_chart(fig, key="screen_epochs", width="stretch")
        st.caption("Forget accuracy and loss after each epoch of the method.", help=epoch_help(forget))
    else:
        st.caption("No per-epoch records: references and uploaded models have none.")


def _push(store, chosen: str) -> None:
    """Push ``chosen`` (and what it starts from) with the settings read now, keeping the outcome."""
    settings = hub.app_push()
    result = store.load(chosen).result
    refusal = hub.app_push_refusal(result, session.owner(), settings)
    repo_id = settings.repo_id if settings.fixed_repo else st.session_state.get("screen_push_repo", "").strip()
    if refusal is None and not repo_id:
        refusal = "type the dataset repo to push to, as OWNER/NAME"
    if refusal is not None:
        st.session_state[KEY_PUSH_MESSAGE] = ("error", f"Not pushed: {refusal}.")
        return
    try:
        pushed = hub.push(repo_id, store, [chosen], weights=bool(st.session_state.get("screen_push_weights")),
                          token=settings.token, endpoint=hub.hub_endpoint())
    except (hub.HubError, StoreError) as err:
        st.session_state[KEY_PUSH_MESSAGE] = ("error", f"Not pushed: {err}")
        return
    warnings = "".join(f" {w}." for w in pushed.warnings)
    st.session_state[KEY_PUSH_MESSAGE] = (
        "success", f"Pushed {len(pushed.ids)} experiment(s) ({', '.join(pushed.ids)}) to {pushed.url}"
        f"{f' in commit {pushed.commit[:12]}' if pushed.commit else ''}; the dataset card lists them.{warnings}")


def push_section(store, chosen: str, result: dict, unbundled: str | None) -> None:
    """Push the experiment to a Hugging Face dataset repo (``mucomp push`` from the page): on a
    Space with the owner's token and repo, locally with the user's own login."""
    settings = hub.app_push()
    with st.expander("Push to the Hugging Face Hub", icon=":material/cloud_upload:"):
        if settings.problem is not None:
            st.caption(f"Pushing from the app is off: {md(settings.problem)}.")
            return
        refusal = hub.app_push_refusal(result, session.owner(), settings) or (
            f"it can't be bundled: {unbundled}" if unbundled else None)
        st.text_input("Dataset repo", value=settings.repo_id or "", key="screen_push_repo",
                      disabled=settings.fixed_repo, placeholder="your-name/unlearning-runs",
                      help="A Hugging Face dataset repo (created if needed): one folder per experiment (result, "
                           "reproducibility manifest, weights if chosen) and a dataset card of all of them."
                           + (" This Space's owner chose it." if settings.fixed_repo else ""))
        st.checkbox("With weights", key="screen_push_weights",
                    help="Upload the model's safetensors weights too (others can then reproduce and Contrast it).")
        st.button("Push", key="screen_push", on_click=_push, args=(store, chosen), disabled=refusal is not None,
                  help=f"Can't push: {md(refusal, 2000)}." if refusal else
                  "Push this experiment and those it starts from, then regenerate the dataset card.")
        message = st.session_state.pop(KEY_PUSH_MESSAGE, None)
        if message:
            (st.error if message[0] == "error" else st.success)(md(message[1], 2000))


def pareto_section(table) -> None:
    """Forgetting vs retained accuracy vs privacy across every experiment."""
    st.caption("Each point is an experiment (square: Original, star: Retrained, for comparison). The ringed points "
               "are the best trade-offs: no other experiment is at least as good on all three axes and better on "
               "one. Click a point to see its details.")
    columns = st.columns(3)
    x = columns[0].selectbox("x axis", METRIC_COLUMNS, index=0, key="screen_pareto_x",
                             help="Forgetting: usually UA (the axis title says which way is better for this "
                                  "forget set).")
    y = columns[1].selectbox("y axis", METRIC_COLUMNS, index=METRIC_COLUMNS.index("TRA"), key="screen_pareto_y",
                             help="Retained accuracy: usually TRA (higher is better).")
    colour = columns[2].selectbox("Colour", METRIC_COLUMNS, index=METRIC_COLUMNS.index("PS"), key="screen_pareto_c",
                                  help="Privacy: usually PS (higher is better).")
    forget = session.scenario().forget_set.text
    ids = tuple(table["ID"])
    fig = session.memo("screen.pareto", (ids, x, y, colour, forget), lambda: figures.pareto_figure(
        table, front_of_experiments(table, (x, y, colour), forget), x=x, y=y, color=colour, forget=forget))
    st.plotly_chart(fig, key="screen_pareto",
                    on_select="rerun", selection_mode="points", width="stretch")


s = session.scenario()
st.title("Screen")
st.caption(f"Scenario: {session.scenario_label(s)}. Every experiment of this scenario, with its accuracy, "
           "efficiency and privacy figures. Pick Model A and Model B to contrast and attack.")
listing = session.experiments(s)
problems = session.store_problems()
if problems:  # unreadable experiments never break the page: named with the reason and how to remove them
    st.warning(f"{len(problems)} stored experiment(s) can't be read and are not listed; delete them on the server "
               "with `mucomp delete ID`: " + "; ".join(f"{md(k)}: {md(v)}" for k, v in problems.items()),
               icon=":material/warning:")
if not listing:
    widgets.hint("No experiments yet for this scenario. Start on Home: prepare the reference models; then run an "
                 "unlearning method on Build.", "home", "Go to Home")
    st.stop()
pick_detail_from_selections()
table = session.memo("screen.table", tuple((r["id"], r.get("updated_at")) for r in listing),  # audits update a result
                     lambda: experiment_table(listing, s.spec.class_names))
ensemble_records, ensemble_problems = load_ensemble_results()
if ensemble_problems:  # a damaged ensemble record never breaks the page: named with the reason
    st.warning(f"{len(ensemble_problems)} ensemble record(s) can't be read; their F, Score and KLoM are not shown: "
               + "; ".join(md(p, 400) for p in ensemble_problems[:5]), icon=":material/warning:")
table = session.memo("screen.ensembles", (tuple((r["id"], r.get("updated_at")) for r in listing),
                                          tuple((r.key, r.created) for r in ensemble_records)),
                     lambda: with_ensemble_columns(table, listing, ensemble_records))
retrained_ensemble = retrained_result_for(listing[0]["config"], ensemble_records)
ensemble_helps = {c: ensemble_column_help(c, table, retrained_ensemble) for c in ENSEMBLE_COLUMNS}
unreproduced = unreproduced_references(listing)
st.header("Experiments", help="One row per experiment of this scenario; the darker a coloured cell, the better its value, on fixed scales (see the legend under the table).")
reference_check_warning(listing, unreproduced)
if comparator_note(listing):  # imported rows sit beside this scenario's own runs, marked by their Type
    st.caption(comparator_note(listing))
shown_rows = table_section(table, unreproduced, ensemble_helps)
with st.expander("How to read the privacy columns (PS and MIA can disagree)"):
    st.markdown(PRIVACY_READING)
st.download_button(  # built only when clicked, by `mucomp report` in a process of its own
    "Download report", data=lambda: report_zip(s.key, session.home_root()), file_name=f"mucomp-report-{s.key}.zip",
    mime="application/zip", key="screen_download_report", on_click="ignore", icon=":material/download:",
    help="This scenario as a static web site (a zip): the table, the trade-off and variance views, and each "
         "experiment's contrast and attack against the Original and the Retrained model. It opens from disk and "
         "can be published as a free static Hugging Face Space (README, 'Publish a report').")
st.header("Model A and Model B")
model_pickers(listing)
if all(session.model_ids()):
    st.page_link(session.PAGES["contrast"], label="Contrast Model A with Model B", icon=":material/arrow_forward:")
st.header("Details")
details_section(listing, unreproduced)
st.header("Trade-off across experiments", help="Each experiment placed by how well it forgets (x), what it keeps (y) and how private it is (colour); the ringed ones are the best trade-offs.")
# The Pareto view follows the method filter; the references stay as landmarks.
pareto_section(table[table["ID"].isin(set(shown_rows["ID"])) | table["Type"].isin(["Original", "Retrained"])])


def replicates_section(s) -> None:
    """Replicate groups (one row per group: mean ± 95 % interval), their members, the spread across
    seeds, rank stability and a hyper-parameter sweep (core: mucomp.groups; views: mucomp.ui.variance)."""
    every_seed = session.experiments_every_training_seed(s)
    summaries = group_summaries(every_seed)
    if not summaries:
        st.caption("No unlearned experiments yet. Give Build several unlearning seeds (e.g. 0-4) to run replicates.")
        return
    metric = st.selectbox("Metric", list(variance.GROUP_METRICS), format_func=variance.GROUP_METRICS.get,
                          key="screen_group_metric",
                          help="The figure the spread, the ranks, 'vs best' and the sweep are about.")
    frame = variance.group_frame(summaries, metric)
    st.caption("Runs that differ only in their seeds (training seed of the references, unlearning seed of the run) "
               "form a group: mean ± half-width of the 95 % Student-t interval over its n replicates. The gap is to "
               "the Retrained model of each replicate's own training seed. 'not resolved': the interval overlaps the "
               "best group's, so the data do not tell the two apart.")
    event = st.dataframe(frame, key="screen_groups", hide_index=True, on_select="rerun", selection_mode="single-row",
                         width="stretch")
    picked = _table_rows(event)
    if picked:
        chosen = summaries[picked[0]]
        st.markdown(f"**Members of {md(chosen['group'])}** (pick them as Model A / B above):")
        members = members_of(every_seed, chosen["group"])
        st.dataframe(variance.member_frame(chosen, members), hide_index=True, key="screen_group_members",
                     width="stretch")
    members = {g["group"]: members_of(every_seed, g["group"]) for g in summaries}
    replicated = [g for g in summaries if g["n"] > 1]
    if not replicated:
        st.caption("Every group has one run so far: the spread and the ranks need replicates.")
        return
    st.plotly_chart(variance.spread_figure(replicated, metric, members), key="screen_spread", width="stretch")
    ranks = variance.rank_frame({g["group"]: members[g["group"]] for g in replicated},
                                {g["group"]: str(g.get("method_label") or g.get("method")) for g in replicated}, metric,
                                forget=replicated[0].get("forget"), retrained=retrained_by_train_seed(every_seed, metric))
    if not ranks.empty:
        st.markdown("**Rank stability**: how each group ranks by this metric on every seed pair they all share.")
        st.dataframe(ranks, hide_index=True, key="screen_ranks", width="stretch")
    left, middle, right = st.columns(3)
    method = left.selectbox("Sweep of method", methods_by_count(summaries), key="screen_sweep_method")
    chosen = [g for g in summaries if g["method"] == method]
    params = varied_params(chosen)
    if len(params) < 2:
        st.caption(f"The sweep needs {md(method)} runs that vary two hyper-parameters (e.g. a grid of epochs × lr on Build).")
        return
    x_param = middle.selectbox("x", params, key="screen_sweep_x")
    y_param = right.selectbox("y", [p for p in params if p != x_param], key="screen_sweep_y")
    grid = sweep_grid(chosen, x_param, y_param, metric)
    st.plotly_chart(variance.sweep_figure(grid, x_param, y_param, metric,
                                          f"{method}: {variance.GROUP_METRICS[metric]} over {x_param} × {y_param} (group means)"),
                    key="screen_sweep", width="stretch")


st.header("Replicates and variance", help="Groups of runs that differ only in their seeds: mean ± 95 % interval, spread, rank stability and sweeps.")
replicates_section(s)
