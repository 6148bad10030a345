"""Streamlit pieces several pages draw: the sidebar, the live jobs panel, reference readiness,
"do this first" hints and image helpers. Thin: every figure and number comes from the core or
from :mod:`mucomp.ui.figures`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import streamlit as st

from mucomp import settings
from mucomp.execution import FINISHED, PrepareReferences
from mucomp.forget_sets import forget_words
from mucomp.progress import EXPERIMENT_STAGES as STAGES
from mucomp.results import IncompatibleResultsError, MissingBlockError, reference_check_warnings
from mucomp.ui import session
from mucomp.ui.text import md

STAGE_LABELS = {
    "references": "Preparing the reference models",
    "unlearning": "Unlearning",
    "evaluating": "Evaluating (one pass per split)",
    "privacy": "Privacy attack",
    "similarity": "Layer-wise similarity",
    "embedding": "Embedding (UMAP)",
    "saving": "Saving",
}
#: Stages of an audit job (mucomp.experiment.audits.run_audits), shown without a run's stage number.
AUDIT_STAGE_LABELS = {
    "shadows": "Making U-LiRA shadow models",
    "ulira": "U-LiRA likelihood ratios",
    "relearning": "Relearning attack",
}
STATE_ICONS = {
    "queued": ":material/schedule:", "running": ":material/play_circle:", "completed": ":green[:material/check_circle:]",
    "diverged": ":material/warning:", "cancelled": ":material/stop_circle:", "failed": ":material/error:",
}


# ---------------------------------------------------------------------------------------------
# Sidebar and hints


def hint(message: str, page: str, label: str) -> None:
    """An info box saying what to do first, with a link to the page where it is done."""
    st.info(message)
    st.page_link(session.PAGES[page], label=label, icon=":material/arrow_forward:")


@contextlib.contextmanager
def view_errors() -> Iterator[None]:
    """Show a view that a stored result can't feed (a missing block in an imported or older
    result, results of different scenarios) as a warning with its advice, not a traceback."""
    try:
        yield
    except (MissingBlockError, IncompatibleResultsError) as err:
        st.warning(md(str(err), 2000), icon=":material/warning:")


def require_model_pair(a_id: str | None, b_id: str | None) -> None:
    """Stop the page with a pointer to Screen unless both Model A and Model B are chosen."""
    if a_id is None or b_id is None:
        hint("Choose Model A and Model B on Screen first (for a first look: the Original as A and your "
             "experiment as B).", "screen", "Go to Screen")
        st.stop()


# ---------------------------------------------------------------------------------------------
# Jobs


#: Rough share of a run's time per stage after the references (digits, 2 CPU cores), for one
#: progress bar that moves steadily instead of restarting at every stage.
STAGE_WEIGHTS = {"unlearning": 0.7, "evaluating": 0.06, "privacy": 0.04, "similarity": 0.04, "embedding": 0.14,
                 "saving": 0.02}


def overall_fraction(job: dict) -> float:
    """The job's progress in [0, 1]: the references stage on its own, the later stages weighted
    by :data:`STAGE_WEIGHTS`."""
    stage, fraction = job.get("stage") or "", min(max(float(job.get("fraction") or 0.0), 0.0), 1.0)
    if stage not in STAGE_WEIGHTS:
        return fraction
    done = 0.0
    for name, weight in STAGE_WEIGHTS.items():
        if name == stage:
            return min(1.0, done + weight * fraction)
        done += weight
    return fraction


def stage_text(job: dict) -> str:
    """One line describing a running job's progress: the stage, and the last reported epoch and
    forget accuracy, which stay shown after the unlearning stage has moved on (a short GA run
    finishes its epochs between two refreshes)."""
    stage = job.get("stage") or ""
    figures = job.get("figures") or {}
    if not stage:
        return "starting…"
    number = STAGES.index(stage) + 1 if stage in STAGES else 0
    if stage in AUDIT_STAGE_LABELS:
        text = AUDIT_STAGE_LABELS[stage]
        if stage == "shadows" and figures.get("pair") is not None:
            text += f" · pair {figures['pair']}/{figures.get('pairs', '?')}"
        return text + f" · {float(job.get('fraction') or 0.0):.0%}"
    text = f"Stage {number}/{len(STAGES)}: {STAGE_LABELS.get(stage, stage)}"
    epoch = figures.get("epoch")
    if stage == "references" and figures.get("reference"):
        text += f" · training the {figures['reference']} model"
        if epoch is not None:
            text += f" · epoch {epoch}/{figures.get('epochs', '?')}"
    elif epoch is not None and (stage == "unlearning" or figures.get("method")):
        # after the unlearning stage the method's last epoch stays shown (not a reference's)
        text += f" · {'epoch' if stage == 'unlearning' else 'last epoch'} {epoch}/{figures.get('epochs', '?')}"
        if figures.get("forget_accuracy") is not None:
            text += f" · forget accuracy {float(figures['forget_accuracy']):.1%}"
    return text


def done_text(job: dict) -> str:
    """The figures of a finished run for its "done" line: epochs, UA, TRA, PS and RT."""
    result = job.get("result") or {}
    figures = job.get("figures") or {}
    parts = []
    if figures.get("epoch") is not None and figures.get("method"):
        parts.append(f"{figures['epoch']}/{figures.get('epochs', '?')} epochs")
    for key, label in (("UA", "UA"), ("TRA", "TRA"), ("PS", "PS")):
        if isinstance(result.get(key), (int, float)):
            parts.append(f"{label} {float(result[key]):.1%}" if key != "PS" else f"{label} {float(result[key]):.2f}")
    if isinstance(result.get("RT"), (int, float)):
        parts.append(f"RT {float(result['RT']):.2f} s")
    return " · ".join(parts)


def _draw_job(job: dict, mine: bool, position: int | None) -> None:
    title = md(session.describe_request(job["config"])) if mine else "A run of another session"
    state = job["state"]
    icon = STATE_ICONS.get(state, "")
    if state == "running":
        st.progress(overall_fraction(job), text=f"{icon} {title} — {stage_text(job)}")
    elif state == "queued":
        st.caption(f"{icon} {title} — queued" + (f", {position} ahead of it" if position else ""))
    elif state == "completed":
        stored = f" → stored as `{job['experiment_id']}`" if job.get("experiment_id") else ""
        figures = done_text(job)
        st.success(f"{title} — done{stored}" + (f" · {figures}" if figures else ""), icon=":material/check_circle:")
    elif state == "failed":
        st.error(f"{icon} {title} failed: {md(job['message'], 2000)}")
    else:
        st.warning(f"{icon} {title} {state}: {md(job['message'], 2000)}")
    cancel = mine and state in ("queued", "running")
    if cancel and st.button("Cancel", key=f"cancel-{job['id']}", help="Stop this run; nothing of it is stored."):
        session.get_queue().cancel(job["id"], owner=session.owner())
        st.toast("Cancel requested: the run stops within a few seconds.")


#: Seconds between two refreshes of the progress panel while work is queued. Every refresh costs the
#: server and the browser CPU on the cores the worker runs on: at 0.5 s a real browser slowed
#: sub-second runs by up to 40 % on 2 cores (benchmarks/browser_rt.py); 1 s still shows every stage
#: that lasts.
PROGRESS_REFRESH_S = 1.0


def jobs_panel(keep: Callable[[dict], bool], *, finished_shown: int = 3, empty: str | None = None) -> None:
    """Live progress of the queue's jobs that ``keep`` accepts: the running one, the queue, and
    this session's latest finished ones. Refreshes itself every PROGRESS_REFRESH_S while work is queued and
    reruns the whole page once when a shown job ends (so new results appear)."""
    me = session.owner()
    seen: set = st.session_state[session.KEY_SEEN_JOBS]
    first = session.home_jobs()
    seen.update(j["id"] for j in first if j["state"] in FINISHED)
    busy = any(j["state"] not in FINISHED for j in first)

    @st.fragment(run_every=PROGRESS_REFRESH_S if busy else None)
    def panel() -> None:
        every = session.home_jobs()
        jobs = [j for j in every if keep(j)]
        active = [j for j in every if j["state"] in ("queued", "running")]
        shown = False
        for job in jobs:
            if job["state"] in ("queued", "running") and (job["owner"] == me or job["state"] == "running"):
                ahead = active.index(job) if job in active else None
                _draw_job(job, job["owner"] == me, ahead)
                shown = True
        finished = [j for j in jobs if j["state"] in FINISHED and j["owner"] == me][::-1][:finished_shown]
        for job in finished:  # newest first
            _draw_job(job, True, None)
            shown = True
        if not shown and empty:
            st.caption(empty)
        # Any job's end reruns the page: the refresh interval above was chosen from the whole
        # queue, so only a rerun stops the polling once the queue is idle.
        ended = [j["id"] for j in every if j["state"] in FINISHED and j["id"] not in seen]
        if ended:
            seen.update(ended)
            st.rerun()

    panel()


def _reference_estimate(s: session.Scenario) -> tuple[float, int, int] | None:
    """``(seconds, n_train, n_retain)``: what training and evaluating ``s``'s two references costs
    on this machine (:func:`mucomp.recipes.expected_reference_seconds`); ``None`` for an
    architecture without a measured speed or a data set not on disk."""
    from mucomp.data import DatasetUnavailableError
    from mucomp.recipes import TRAINING_SPEEDS, expected_reference_seconds

    if s.arch not in TRAINING_SPEEDS:  # no estimate: never load the data set (CIFAR-10 stalls the page)
        return None
    try:
        n_train, n_test = len(s.data.train), len(s.data.test)
        n_retain = int(s.retain_indices.size)
    except DatasetUnavailableError:
        return None
    seconds = expected_reference_seconds(s.dataset, s.arch, n_train, n_retain, n_test)
    return None if seconds is None else (seconds, n_train, n_retain)


def reference_time_note(s: session.Scenario) -> str | None:
    """What preparing ``s``'s references costs on this machine, for an architecture trained here
    with a measured speed; ``None`` otherwise (digits: seconds; the published checkpoints: a
    download)."""
    from mucomp.recipes import recipe_for

    estimate = _reference_estimate(s)
    if estimate is None:
        return None
    seconds, n_train, n_retain = estimate
    epochs = recipe_for(s.dataset, s.arch).epochs
    return (f"Preparing the references trains both here: about {max(1, round(seconds / 60))} min on this machine "
            f"({epochs} epochs over {n_train:,} images for the Original and {n_retain:,} for the Retrained, "
            "then one evaluation each; estimated from this machine's measured speed). They are cached: "
            "every later experiment of this scenario reuses them.")


def ulira_time_note(s: session.Scenario, result: dict) -> str:
    """What U-LiRA's first run for ``result``'s method configuration costs, said before it starts:
    K + M shadow pairs, each an Original and a Retrained model of another training seed plus this
    experiment's method on it (its stored RT); estimated from this machine's measured speed where
    the architecture has one (:func:`mucomp.recipes.expected_reference_seconds`)."""
    from mucomp.audits.ulira import DEFAULT_HELD_OUT, DEFAULT_SHADOWS

    pairs = DEFAULT_SHADOWS + DEFAULT_HELD_OUT
    reuse = "Later experiments of the same method configuration reuse the shadows and take seconds."
    estimate = _reference_estimate(s)
    if estimate is None:
        if s.dataset == "digits":
            return (f"Not computed yet for this model. On digits the first run of a method configuration makes "
                    f"{pairs} shadow pairs (about two minutes on 2 cores). {reuse}")
        return f"Not computed yet for this model. The first run of a method configuration makes {pairs} shadow pairs. {reuse}"
    references = estimate[0]
    method = float((result.get("metrics") or {}).get("RT") or 0.0)
    total = pairs * (references + method)
    return (f"Not computed yet for this model. The first run of this method configuration trains {pairs} shadow "
            f"pairs here: about {max(1, round(total / 60))} min on this machine (per pair an Original and a "
            f"Retrained model of another training seed, about {max(1, round(references / 60))} min, and this "
            f"method on the Original, {method:.0f} s; estimated from this machine's measured speed). {reuse}")


def reference_status(s: session.Scenario, *, key: str) -> bool:
    """Readiness of the scenario's references: ready, being prepared (live progress), failed, or
    not started (with a button to prepare them). Returns whether they are ready."""
    if session.references_ready(s):
        st.success("The reference models (Original and Retrained) of this scenario are ready.", icon=":material/check_circle:")
        ids = session.reference_ids(session.experiments(s))
        for warning in reference_check_warnings(session.load_result(i) for i in ids.values()):
            st.warning(md(warning, 2000), icon=":material/report:")
        return True
    job = session.reference_job(s)
    if job is not None and job["state"] in ("queued", "running"):
        st.info("Preparing the reference models: training (or downloading) the Original and the Retrained model, "
                "then evaluating both. You can keep browsing; this runs in the background.")
    else:
        if job is not None and job["state"] == "failed":
            st.error(f"Preparing the reference models failed: {md(job['message'], 2000)}")
        st.warning("The reference models of this scenario are not ready yet. Prepare them first: every "
                   "experiment is compared with them.", icon=":material/warning:")
        spec = s.spec
        st.caption(settings.threads_statement())
        estimate = reference_time_note(s)
        if estimate is not None:
            st.info(estimate, icon=":material/schedule:")
        note = (f" {estimate}" if estimate is not None else
                " The files are downloaded first; a GPU is advised." if spec.needs_download else
                " On digits this takes under a minute on a laptop CPU.")
        if st.button("Prepare reference models", key=key, type="primary",
                     help="Train (or download) the Original model, trained on every training image, and the "
                          f"Retrained model, trained without {forget_words(s.forget_set).noun}, then evaluate both."
                          + note):
            session.prepare_references(s)
            st.rerun()
    jobs_panel(lambda j: isinstance(j["config"], PrepareReferences) and j["config"].scenario == s,
               finished_shown=0)  # a failure is reported above
    return False


# ---------------------------------------------------------------------------------------------
# Images


def display_image(s: session.Scenario, dataset_index: int, size: int = 160) -> np.ndarray:
    """One training image, upscaled (nearest neighbour) to about ``size`` pixels, uint8
    ``[H, W, 3]`` for ``st.image``."""
    image = s.data.train.display_images(np.array([int(dataset_index)]))[0]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    factor = max(1, size // image.shape[0])
    return np.kron(image, np.ones((factor, factor, 1), dtype=np.uint8))
