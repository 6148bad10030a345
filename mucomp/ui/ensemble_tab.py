"""The Attack page's "Many models" tab: the NeurIPS 2023 challenge's forgetting quality F, its
final score and EasyDUB's KLoM, from ensembles of unlearned and Retrained models.

An ensemble belongs to a method configuration (and its Original), so the tab shows one model's
configuration: Model A's, or Model B's when chosen (or when A is a reference). Its stored record
(:mod:`mucomp.store.ensembles`) is drawn with the figure data of :mod:`mucomp.results.ensembles`
and the builders of :mod:`mucomp.ui.figures.ensembles`; a configuration without one (or a user who
wants a larger N) gets a button that queues the ensemble job on the app's workers, with the time it
will take said before it starts. The job stores the record; the tab reads it on the next rerun.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from mucomp.config import ExperimentConfig
from mucomp.execution import MakeEnsembleMember, RunEnsemble, SubmissionError
from mucomp.results import ensembles as ens
from mucomp.store.ensembles import (
    EnsembleResult,
    ensemble_result_for,
    load_ensemble_results,
    retrained_ensemble_key,
    retrained_result_for,
)
from mucomp.ui import figures, grids, session, widgets
from mucomp.ui.figures import ensembles as ens_figures
from mucomp.ui.labels import experiment_labels
from mucomp.ui.text import md

#: Forget images in the ranking grid (the highest ε first).
RANKED_IMAGES = 30
GRID_COLUMNS = 10
#: Session keys: the tab's model ("a" / "b") and the image shown per ensemble key.
KEY_WHICH = "mucomp_ensemble_which"
KEY_IMAGES = "mucomp_ensemble_images"
KEY_MESSAGE = "mucomp_ensemble_message"
KEY_SIZES = "mucomp_ensemble_sizes"
#: Seconds an estimate is reused (it changes as members are made).
ETA_TTL_S = 15

INTRO = (
    "Many models: instead of one unlearned model against one Retrained model, N unlearned models of one method "
    "configuration (N unlearning seeds, one Original) against N Retrained models (N training seeds), image by "
    "image, as the NeurIPS 2023 unlearning challenge scored about 1,200 teams. The ensemble belongs to the method "
    "configuration: every experiment of it shows the same values."
)


def _memo_key(record: EnsembleResult, *extra: Any) -> tuple:
    """What a view of ``record`` depends on: its key and when it was written (a larger N rewrites it)."""
    return (record.key, record.created, record.n_models, *extra)


def _number(value: float | None, style: str = "{:.3f}") -> str:
    return "—" if value is None else style.format(value)


def pick_model(labels: tuple[str, str], results: tuple[dict, dict],
               control_labels: tuple[str, str] | None = None) -> tuple[str, str, dict] | None:
    """Model A or Model B (a segmented control, showing ``control_labels`` or ``labels``, when they
    differ): the unlearned one whose configuration the tab shows; None when neither is an
    unlearned model."""
    shown = dict(zip("ab", control_labels or labels, strict=True))
    choices = {which: (which, label, result) for which, label, result in zip("ab", labels, results, strict=True)
               if result.get("kind") == "unlearned"}
    if results[0]["id"] == results[1]["id"]:
        choices.pop("b", None)
    if not choices:
        return None
    current = st.session_state.get(KEY_WHICH)
    if current not in choices:
        current = next(iter(choices))
    if len(choices) > 1:
        session.bind("ensemble_which", current)
        st.segmented_control(
            "Configuration of", list(choices), key="ensemble_which", format_func=lambda w: md(shown[w], 120),
            on_change=lambda: st.session_state.__setitem__(KEY_WHICH, st.session_state["ensemble_which"] or current),
            help="An ensemble belongs to a method configuration: pick the model whose configuration to show.")
    st.session_state[KEY_WHICH] = current
    return choices[current]


def summary(record: EnsembleResult, retrained: EnsembleResult | None) -> None:
    """F, the score, KLoM P95 and N as metrics, with what each means and the resolution N allows."""
    cells = st.columns(4)
    cells[0].metric("Forgetting quality F", _number(record.forget_quality), help=ens.F_TEXT)
    cells[1].metric("Challenge score", _number(record.score), help=ens.SCORE_TEXT)
    cells[2].metric("KLoM P95 (forget)", _number(record.klom_p95.forget, "{:.2f}"), help=ens.KLOM_TEXT)
    cells[3].metric("Models", f"{record.n_models} + {record.n_retrained}",
                    help="N unlearned models of this configuration + N Retrained models of the scenario.")
    acc = record.accuracies
    floor = ("" if retrained is None or retrained.self_score is None else
             f" The Retrained ensemble scores F = {retrained.self_score:.3f} against itself (two halves): the noise floor.")
    st.caption(f"{ens.resolution_text(record)} Accuracy ratios of the score: retain {acc.unlearned_retain:.1%} / "
               f"{acc.retrained_retain:.1%}, test {acc.unlearned_test:.1%} / {acc.retrained_test:.1%} (unlearned / "
               f"Retrained, means over the models).{floor}")


def chosen_image(record: EnsembleResult, ranking) -> int:
    """The image whose distributions are drawn: the latest click in the grid or the KLoM chart,
    else the one kept for this ensemble, else the highest ε."""
    images: dict = st.session_state.setdefault(KEY_IMAGES, {})
    for key in ("ensemble_grid", "ensemble_klom"):
        picked = session.new_selection(key, figures.selection_indices)
        if picked and picked[0] in record.forget_indices:
            images[record.key] = picked[0]
    if images.get(record.key) not in record.forget_indices:
        images[record.key] = int(ranking["index"].iloc[0])
    return images[record.key]


def figures_section(s, record: EnsembleResult, records: list[EnsembleResult], label: str, color: str,
                    listing: list[dict]) -> None:
    """The ε buckets, F method against method (every record of ``records`` of the scenario), the
    ranked images, one image's two distributions and KLoM per image."""
    left, right = st.columns(2)
    with left:
        fig = session.memo("ensemble.buckets", _memo_key(record), lambda: ens_figures.epsilon_bucket_figure(
            ens.epsilon_buckets(record)))
        st.plotly_chart(fig, key="ensemble_buckets", width="stretch")
        st.caption("How many forget images fall in each ε bucket, and the points one image there earns (F is their "
                   "mean). Red: past the resolution, no points.")
    with right:
        labels = ens.record_labels(records, listing)
        scores, floor = ens.method_scores(records, record.config, labels)
        stamp = (tuple((r.key, r.created) for r in records), tuple(sorted(labels.items())), record.key)
        fig = session.memo("ensemble.methods", stamp, lambda: ens_figures.method_scores_figure(scores, floor))
        st.plotly_chart(fig, key="ensemble_methods", width="stretch")
        st.caption("F of every method configuration with an ensemble in this scenario (outlined: this one). "
                   + ("The dashed line is what retraining itself scores (two halves of the Retrained ensemble, N/2 "
                      "models per side): a method near it forgets as well as this N can tell."
                      if floor is not None else "No Retrained self-score stored: the noise floor is unknown."))
    ranking = session.memo("ensemble.ranking", _memo_key(record), lambda: ens.epsilon_ranking(record))
    index = chosen_image(record, ranking)
    top = ranking.head(RANKED_IMAGES)
    grid = session.memo("ensemble.grid", _memo_key(record, index), lambda: grids.image_grid_figure(
        s.data.train.display_images(top["index"].to_numpy()), top["index"].tolist(), columns=GRID_COLUMNS,
        captions=[f"Image #{i} · ε {e:.2f} · {p:.3g} points" for i, e, p in zip(top["index"], top["epsilon"],
                                                                                 top["points"], strict=True)],
        selected=index, title=f"The {len(top)} forget images of highest ε (most exposed first)"))
    st.plotly_chart(grid, key="ensemble_grid", on_select="rerun", selection_mode="points", width="content",
                    config={"displayModeBar": False})
    st.caption("Click an image (here or a bar of the KLoM chart) to see its two confidence distributions.")
    left, right = st.columns(2)
    with left:
        distributions = ens.confidence_distributions(record, index)
        if distributions is None:
            st.caption("This record stores no per-model confidences (a large ensemble may leave them out).")
        else:
            fig = session.memo("ensemble.distributions", _memo_key(record, index, label, color), lambda: (
                ens_figures.confidence_distribution_figure(distributions, label=label, color=color)))
            st.plotly_chart(fig, key="ensemble_distributions", width="stretch")
            st.caption("The picture of the challenge paper: this image's confidence under every unlearned model and "
                       "every Retrained model. Overlapping histograms = the image does not give the method away.")
    with right:
        fig = session.memo("ensemble.klom", _memo_key(record, index), lambda: ens_figures.klom_figure(
            ens.klom_frame(record), index))
        st.plotly_chart(fig, key="ensemble_klom", on_select="rerun", selection_mode="points", width="stretch")
        st.caption("KLoM of every forget image (red: the image on the left); the dashed line is the P95 the table "
                   "shows.", help=ens.KLOM_TEXT)


def _experiment_config(config: dict) -> tuple[ExperimentConfig | None, str | None]:
    """The stored config as the job API takes it, or why it can't be (a config of an older or a
    custom shape)."""
    try:
        return ExperimentConfig.from_dict(config), None
    except (TypeError, ValueError) as err:
        return None, f"its stored configuration can't be run again ({err})"


@st.cache_data(ttl=ETA_TTL_S, show_spinner=False, max_entries=256)
def _eta(config: ExperimentConfig, n: int, workers: int) -> tuple[str | None, str | None]:
    """The estimate said before the job starts and why the ensemble can't be made (one of them
    None). The execution layer's ensemble module is imported only here and on a click. Kept a few
    seconds: every rerun of the page draws this tab, and a large N checks hundreds of cached members."""
    try:
        from mucomp.execution.ensembles import ensemble_eta, eta_text
    except ImportError as err:
        return None, f"the ensemble jobs are not available in this installation ({err})"
    try:
        return eta_text(ensemble_eta(config, n, workers=workers)), None
    except ValueError as err:  # EnsembleError: a base other than the Original, an unknown method, a costly model
        return None, str(err)


def _job_key(request: Any) -> str | None:
    """The ensemble record key a queued request works towards (None: not an ensemble request)."""
    if isinstance(request, RunEnsemble):
        return ens.ensemble_key(request.config.to_dict())
    if isinstance(request, MakeEnsembleMember):
        config = request.spec.config.to_dict()
        return ens.ensemble_key(config) if request.spec.kind == "unlearned" else retrained_ensemble_key(config)
    return None


def _keys(config: ExperimentConfig) -> set[str]:
    """The keys of the configuration's ensemble and its scenario's Retrained ensemble."""
    data = config.to_dict()
    return {ens.ensemble_key(data), retrained_ensemble_key(data)}


def _pending(keys: set[str]) -> bool:
    return any(_job_key(j["config"]) in keys and j["state"] in ("queued", "running") for j in session.home_jobs())


def _submit(config: ExperimentConfig, n: int, key: str) -> None:
    queue = session.get_queue()
    try:
        from mucomp.execution.ensembles import ensemble_requests  # the experiment layer: imported on a click only

        requests = ensemble_requests(config, n, parallel=getattr(queue, "workers", 1) > 1)
        queue.submit(requests, owner=session.owner(), max_runs=None)
    except (SubmissionError, ValueError, ImportError) as err:
        st.session_state[KEY_MESSAGE] = (key, str(err))
        return
    st.toast("Queued: the ensembles are made in the background; this tab shows their progress.")


def run_panel(s, stored_config: dict, record: EnsembleResult | None) -> None:
    """N, the estimate (said before the job starts), the button that queues the job, and the
    job's progress; or why this configuration's ensemble can't be made."""
    key = ens.ensemble_key(stored_config)
    default = ens.default_ensemble_size(s.dataset)
    if record is not None:  # the next size up: the job grows the ensemble
        default = next((n for n in ens.ENSEMBLE_SIZES if n > record.n_models), ens.ENSEMBLE_SIZES[-1])
    chosen: dict = st.session_state.setdefault(KEY_SIZES, {})  # per configuration, kept across reruns
    session.bind("ensemble_n", chosen.get(key, default))
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    n = left.selectbox("Models per ensemble (N)", ens.ENSEMBLE_SIZES, key="ensemble_n",
                       on_change=lambda: chosen.__setitem__(key, st.session_state["ensemble_n"]),
                       help="More models resolve larger ε (32: up to 4, 64: 5, 512: 7) and cost proportionally "
                            "more. An ensemble grows: asking for 64 after 32 makes 32 more.")
    config, problem = _experiment_config(stored_config)
    eta = None
    if config is not None:
        eta, problem = _eta(config, n, getattr(session.get_queue(), "workers", 1))
    pending = config is not None and _pending(_keys(config))
    right.button("Make the ensembles" if record is None else f"Grow to N = {n}", key="ensemble_run", type="primary",
                 disabled=problem is not None or pending or (record is not None and n <= record.n_models),
                 on_click=_submit, args=(config, n, key),
                 help="Queue the ensemble job: the N unlearned models of this configuration and, if not made yet, "
                      "the N Retrained models of the scenario; the record is stored for every experiment of the "
                      "configuration.")
    if problem is not None:
        st.info(f"This ensemble can't be made here: {md(problem, 2000)}", icon=":material/block:")
    else:
        st.caption(md(eta, 2000))
    message = st.session_state.get(KEY_MESSAGE)
    if message and message[0] == key:
        st.session_state.pop(KEY_MESSAGE, None)
        st.error(md(message[1], 2000), icon=":material/block:")
    if config is not None:
        keys = _keys(config)
        widgets.jobs_panel(lambda job: _job_key(job["config"]) in keys, finished_shown=1)


def ensemble_tab(s, labels: tuple[str, str], results: tuple[dict, dict], listing: list[dict]) -> None:
    """The tab: the chosen configuration's ensemble figures, or how to make them."""
    st.caption(INTRO)
    records, problems = load_ensemble_results()
    if problems:  # a damaged or hand-edited record never breaks the page: named with the reason
        st.warning(f"{len(problems)} ensemble record(s) can't be read and are left out: "
                   + "; ".join(md(p, 400) for p in problems[:5]) + (" …" if len(problems) > 5 else ""),
                   icon=":material/warning:")
    # The control's labels tell two runs of one method apart (settings, seeds); charts keep the short ones.
    detailed = experiment_labels(listing)
    picked = pick_model(labels, results, tuple(f"{which}: {detailed[r['id']]}" if r["id"] in detailed else label
                                               for which, label, r in zip("AB", labels, results, strict=True)))
    if picked is None:
        st.info("Ensembles belong to an unlearning method's configuration: choose an unlearned model as Model A or "
                "Model B on Screen.", icon=":material/info:")
        return
    which, label, result = picked
    config = result["config"]
    record = ensemble_result_for(config, records)
    retrained = retrained_result_for(config, records)
    st.subheader(md(label))
    if record is None:
        st.info("No ensemble yet for this method configuration: run the command below or press the button. "
                + ens.ENSEMBLE_JOB_TEXT, icon=":material/info:")
        st.code(ens.ensemble_command(config, ens.default_ensemble_size(s.dataset)), language="bash")
        run_panel(s, config, None)
        return
    summary(record, retrained)
    with st.expander("What F, the score and KLoM mean"):
        st.markdown("\n\n".join((ens.F_TEXT, ens.SCORE_TEXT, ens.KLOM_TEXT, ens.F_VS_PS)))
    figures_section(s, record, records, label, figures.MODEL_COLORS[which.upper()], listing)
    with st.expander("A larger ensemble"):
        run_panel(s, config, record)


__all__ = ["ensemble_tab"]
