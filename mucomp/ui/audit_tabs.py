"""The Attack page's on-demand audit tabs: Per-example (U-LiRA) and Relearning.

Each tab shows Model A and Model B side by side. A stored audit is drawn from the stored result
(figures from :mod:`mucomp.ui.figures.attack`, memoised per experiment and the audit's
``computed_at``); an audit not computed yet gets a Run button that queues a
:class:`~mucomp.execution.RunAudit` job on the app's workers (with :class:`~mucomp.execution.MakeShadowPair`
jobs for U-LiRA's shadow pairs when the server has several workers) and the job's live progress.
The job stores the audit with the experiment; the page then reloads the result.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from mucomp.audits.eligibility import AuditError, ulira_problem
from mucomp.catalogue import ULIRA_SCOPE
from mucomp.execution import RunAudit, SubmissionError
from mucomp.forget_sets import stored_forget_text
from mucomp.results.attack import relearn_frame, relearn_reading, ulira_ranking, ulira_roc_text
from mucomp.results.contrast import stored_audit
from mucomp.results.imported import without_weights
from mucomp.ui import figures, grids, session, widgets
from mucomp.ui.text import md, relearn_help, relearn_steps_note

#: Images shown in the U-LiRA ranking grid (the most exposed first).
RANKED_IMAGES = 30
GRID_COLUMNS = 10

ULIRA_HELP = (
    "U-LiRA (Hayes et al., SaTML 2025) attacks each forget image on its own. Shadow models redo this experiment's "
    "method and settings from Originals trained with other seeds; Retrained models of the same seeds are the "
    "alternative. Per image, a Gaussian is fitted to each side's score φ = log p_y − log(1 − p_y); the likelihood "
    "ratio (LR) says which side an image's score looks like. The accuracy is measured on held-out shadow pairs: "
    "0.5 = no image gives the method away (like retraining); 1 = every image does (lower is better). "
    + ULIRA_SCOPE
)


def forget_of(result: dict) -> str:
    """The forget-set text of a stored result: the relearning texts follow its kind."""
    config = result.get("config")
    return stored_forget_text(config if isinstance(config, dict) else {})


def audit_job_panel(experiment_id: str, audit: str) -> None:
    """Live progress of this experiment's queued or running ``audit`` job (and this session's last
    finished one)."""

    def keep(job: dict) -> bool:
        config = job["config"]
        return isinstance(config, RunAudit) and config.experiment_id == experiment_id and audit in config.audits

    widgets.jobs_panel(keep, finished_shown=1)


def _pending(experiment_id: str, audit: str) -> bool:
    return any(isinstance(j["config"], RunAudit) and j["config"].experiment_id == experiment_id
               and audit in j["config"].audits and j["state"] in ("queued", "running") for j in session.home_jobs())


def _submit(experiment_id: str, audit: str) -> None:
    from mucomp.execution.audits import audit_requests  # the experiment layer: imported on a click only

    queue = session.get_queue()
    try:
        requests = audit_requests(experiment_id, audit, store=session.get_store(),
                                  parallel=getattr(queue, "workers", 1) > 1)
        queue.submit(requests, owner=session.owner(), max_runs=None)
    except (AuditError, SubmissionError) as err:
        st.session_state[f"audit_message_{audit}_{experiment_id}"] = str(err)
        return
    st.toast("Queued: the audit runs in the background; this page shows its progress.")


def why_not(result: dict, audit: str) -> str | None:
    """Why ``audit`` can't run for this stored result (None when it can): both re-run the model,
    so a model imported without weights (a comparator result) can't have them."""
    return without_weights(result) or (ulira_problem(result) if audit == "ulira" else None)


def run_button(result: dict, audit: str, which: str, label: str, help_text: str) -> None:
    """The Run button of one audit for one model, or why it can't run, plus the job's progress."""
    experiment_id = result["id"]
    reason = why_not(result, audit)
    if reason:
        st.info(md(reason, 2000), icon=":material/block:")
        return
    pending = _pending(experiment_id, audit)
    st.button(label, key=f"audit_run_{audit}_{which}", type="primary", disabled=pending, help=help_text,
              on_click=_submit, args=(experiment_id, audit))
    message = st.session_state.pop(f"audit_message_{audit}_{experiment_id}", None)
    if message:
        st.error(md(message, 2000), icon=":material/block:")
    audit_job_panel(experiment_id, audit)


def _memo_key(result: dict, block: dict, *extra) -> tuple:
    return (result["id"], str(block.get("computed_at")), *extra)


def ulira_column(s, which: str, label: str, result: dict) -> None:
    """U-LiRA for one model: accuracy, the per-image LR ranked, the most exposed images."""
    st.subheader(md(label))
    block = stored_audit(result, "ulira")
    if block is None:
        st.caption(widgets.ulira_time_note(s, result))
        run_button(result, "ulira", which, "Run U-LiRA", "Queue the per-example attack (K = 8 fitted, M = 4 "
                   "held-out shadow pairs) as a background job; the result is stored with the experiment.")
        return
    cells = st.columns(3)
    cells[0].metric("U-LiRA accuracy", f"{block['accuracy']:.3f}",
                    help="Mean over images and held-out shadow pairs of ½·[LR(unlearned) > 0] + ½·[LR(retrained) ≤ 0]. "
                         "0.5 = indistinguishable from retraining (lower is better, down to 0.5). " + ULIRA_SCOPE)
    cells[1].metric("LR > 0", f"{block['share_flagged']:.0%}",  # a short label: the cell is ~130 px at 1280 px
                    help="Images with LR > 0: the share of this model's forget images whose score looks like the "
                         "method's shadows rather than the Retrained shadows (lower is better).")
    cells[2].metric("Shadow pairs", f"{block['shadows']} + {block['held_out']}",
                    help="K pairs fit the per-image Gaussians, M held-out pairs measure the accuracy.")
    if "auc" in block:  # blocks stored before LiRA's threshold-free figures have the accuracy alone
        st.caption(md(ulira_roc_text(block)))
    ranking = session.memo("audit.ulira.ranking", _memo_key(result, block), lambda: ulira_ranking(block))
    fig = session.memo("audit.ulira.lr", _memo_key(result, block, label),
                       lambda: figures.ulira_lr_figure(ranking, title=f"Per-image LR of Model {which.upper()}"))
    st.plotly_chart(fig, key=f"audit_ulira_lr_{which}", width="stretch")
    top = ranking.head(RANKED_IMAGES)
    grid = session.memo("audit.ulira.grid", _memo_key(result, block), lambda: grids.image_grid_figure(
        s.data.train.display_images(top["index"].to_numpy()), top["index"].tolist(), columns=GRID_COLUMNS,
        captions=[f"Image #{i} · rank {r} · LR {v:.3g}" for i, r, v in zip(top["index"], top["rank"], top["lr"],
                                                                           strict=True)],
        title=f"The {len(top)} most exposed forget images (highest LR first)"))
    st.plotly_chart(grid, key=f"audit_ulira_grid_{which}", width="content", config={"displayModeBar": False})
    st.caption(md(f"Computed {str(block.get('computed_at', ''))[:16].replace('T', ' ')} UTC · shadow training seeds "
                  f"{block['fit_seeds'][0]}–{block['held_out_seeds'][-1]}."))


def relearn_column(which: str, label: str, result: dict) -> None:
    """The relearning attack for one model: curves and the summary."""
    st.subheader(md(label))
    block = stored_audit(result, "relearn")
    if block is None:
        st.caption("Not computed yet for this model (a few seconds on digits).")
        run_button(result, "relearn", which, "Run the relearning attack",
                   "Queue the relearning attack (this model and the Retrained model, 50 steps each) as a background "
                   "job; the result is stored with the experiment.")
        return
    relative = block.get("relative")
    cells = st.columns(2)  # short labels and values: a cell is about 200 px wide at 1280 px (details in help)
    censored = block["steps_to_target"]["model"] is None
    cells[0].metric("Relative steps", "censored" if censored else "—" if relative is None else f"{relative:.2f}",
                    help="Relearn steps relative to Retrained: the steps until forget accuracy is back at half the "
                         "Original's, divided by the Retrained model's steps under the same fine-tuning (1 = like "
                         "retraining; lower = comes back faster). A curve that never gets there within the "
                         f"{md(block['steps'])} steps is censored: no ratio." + relearn_steps_note(forget_of(result)))
    cells[1].metric("Relearn images", f"{block['k']}",
                    help=f"Fine-tuning on {md(block['k'])} forget images plus retain images: {md(block['steps'])} SGD "
                         f"steps of batch {md(block['batch_size'])} at lr {block['lr']:g}; accuracy measured on the "
                         "other forget images.")
    color = figures.MODEL_COLORS[which.upper()]
    fig = session.memo("audit.relearn", _memo_key(result, block, label, color), lambda: figures.relearn_figure(
        relearn_frame(block), block["target"], color=color, title=f"Relearning Model {which.upper()}"))
    st.plotly_chart(fig, key=f"audit_relearn_{which}", width="stretch")
    st.caption(md(relearn_reading(block, forget_of(result)), 2000))


def model_columns(draw: Callable[[str, str, dict], None], labels: tuple[str, str], results: tuple[dict, dict]) -> None:
    """``draw(which, label, result)`` for Model A and Model B side by side (once when they are the
    same experiment)."""
    pairs = [("a", labels[0], results[0]), ("b", labels[1], results[1])]
    if results[0]["id"] == results[1]["id"]:
        pairs = pairs[:1]
    columns = st.columns(len(pairs))
    for column, (which, label, result) in zip(columns, pairs, strict=True):
        with column:
            draw(which, label, result)


def ulira_tab(s, labels: tuple[str, str], results: tuple[dict, dict]) -> None:
    st.caption(ULIRA_HELP)
    model_columns(lambda which, label, result: ulira_column(s, which, label, result), labels, results)


def relearn_tab(labels: tuple[str, str], results: tuple[dict, dict]) -> None:
    st.caption(relearn_help(forget_of(results[0])))
    model_columns(relearn_column, labels, results)


__all__ = ["relearn_tab", "ulira_tab", "why_not"]
