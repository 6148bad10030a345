"""Attack: a membership-inference attack tries to tell Model A, then Model B, from the Retrained
model on the forget images. Four tabs: the threshold attack (metric, threshold strategy or a
custom threshold; distributions, attack curves, the privacy score at the threshold, high- and
low-risk images, an instance panel), the per-example U-LiRA attack and the relearning attack
(both on demand, as background jobs; drawn by :mod:`mucomp.ui.audit_tabs`), and many-model
evaluation (the challenge's F and KLoM on ensembles; :mod:`mucomp.ui.ensemble_tab`)."""

import numpy as np
import streamlit as st

from mucomp.privacy import METRIC_RANGES, METRICS
from mucomp.results import (
    METRIC_LABELS,
    PRIVACY_READING,
    STRATEGY_LABELS,
    AttackView,
    attack_view,
    clearest_first,
    experiment_label,
    instance_probabilities,
)
from mucomp.results.attack import feature_control
from mucomp.results.imported import attack_reference_id, attack_reference_ready
from mucomp.ui import audit_tabs, ensemble_tab, figures, grids, session, widgets
from mucomp.ui.text import instance_help, md
from mucomp.ui.thumbnails import images_problem

session.setup("Attack")

GRID_LIMIT = 40
GRID_COLUMNS = 10
GRID_HELP = {
    "success": "High risk: images whose value gives this model away (the attack names it correctly); fewer is better.",
    "failure": "Low risk: images where the attack mistakes this model for the Retrained one; more is better.",
}
GRID_KEYS = [f"attack_grid_{kind}_{which}" for which in ("a", "b") for kind in ("success", "failure")]
STRATEGY_HELP = (
    "How the attacker picks its threshold. Custom: yours (the slider). Max attack score: the threshold that best "
    "separates this model from the Retrained one. Max success rate: the one that labels the most images right. "
    "Common: one threshold for A and B together. Worst case: the strongest attack over both metrics on the 51-point "
    "threshold grid (its privacy score is the table's PS)."
)


def settings() -> dict:
    return st.session_state[session.KEY_ATTACK]


def _threshold_key(which: str, metric: str) -> str:
    return f"{metric}:{which}"


def _on_slider(which: str, metric: str) -> None:
    state = settings()
    if state["strategy"] != "custom":  # the other model keeps the threshold it shows now
        for other, (shown_metric, shown_threshold) in state.get("shown", {}).items():
            if other != which and shown_metric == metric:
                state["thresholds"][_threshold_key(other, metric)] = shown_threshold
    state["strategy"], state["metric"] = "custom", metric
    state["thresholds"][_threshold_key(which, metric)] = float(st.session_state[f"attack_threshold_{which}"])


def controls(plotted: dict[str, str]) -> None:
    """Metric and strategy, bound to the session's attack settings. The feature control shows the
    metric the figures use (``plotted``: model name -> its view's metric): under the worst case,
    which picks the metric itself, it is locked on that metric (:func:`feature_control`)."""
    state = settings()
    feature = feature_control(state["strategy"], state["metric"], plotted)
    session.bind("attack_metric", feature.value)
    session.bind("attack_strategy", state["strategy"])
    left, right = st.columns(2)
    left.segmented_control(
        "Attack feature", list(METRICS), key="attack_metric", format_func=METRIC_LABELS.get,
        disabled=not feature.editable,
        on_change=lambda: state.__setitem__("metric", st.session_state["attack_metric"] or state["metric"]),
        help="What the attacker looks at for each forget image. Entropy: how uncertain the prediction is, the "
             "entropy of softmax(z / 2) (temperature T = 2, as the published attack uses). Confidence: how sure the "
             "model is of its top class, the log-odds of its top softmax probability at T = 1. Probabilities shown "
             "anywhere else are T = 1. The Worst case strategy picks the feature itself.",
    )
    if feature.note:
        left.caption(feature.note)
    right.selectbox(
        "Threshold strategy", list(STRATEGY_LABELS), key="attack_strategy", format_func=STRATEGY_LABELS.get,
        on_change=lambda: state.__setitem__("strategy", st.session_state["attack_strategy"]),
        help=STRATEGY_HELP,
    )


def _score(value) -> str | None:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) else None


def worst_case_text(metrics: dict) -> str:
    """The stored worst cases, each named: PS over the 51-point grid (the table's PS) and PS_exact
    over every distinct value (a stronger attack); either may be missing on older results."""
    ps, exact = _score(metrics.get("PS")), _score(metrics.get("PS_exact"))
    parts = [f"worst case on the 51-point grid (the table's PS) {ps}" if ps else
             "worst case on the 51-point grid: not stored for this result"]
    if exact:
        parts.append(f"PS_exact (every value as threshold) {exact}")
    return " · ".join(parts)


def view_key(which: str, ids: tuple[str, str, str], metric: str, strategy: str) -> tuple:
    """Everything one model's attack view depends on: (model, Retrained, other model) ids and the settings."""
    threshold = settings()["thresholds"].get(_threshold_key(which, metric)) if strategy == "custom" else None
    model_id, other_id = (ids[0], ids[1]) if which == "a" else (ids[1], ids[0])
    return model_id, ids[2], other_id if strategy == "common" else None, metric, strategy, threshold


def compute_view(key: tuple, model: dict, retrained: dict, other: dict) -> AttackView:
    _, _, _, metric, strategy, threshold = key
    return session.memo("attack.view", key, lambda: attack_view(model, retrained, metric, strategy,
                                                                threshold=threshold, other=other))


def image_grid(s, view: AttackView, indices: np.ndarray, title: str, key: str, memo_key: tuple) -> None:
    """Up to :data:`GRID_LIMIT` forget images, the most clearly attributed first; click to inspect."""
    if indices.size == 0:
        st.caption(f"{title}: none.")
        return
    missing = images_problem(s)
    if missing:  # e.g. imported comparator results without CIFAR-10 on disk: say so, draw the rest
        st.caption(f"{title}: {indices.size}. {md(missing, 2000)}")
        return
    st.caption(GRID_HELP[key.split("_")[2]], help="Click an image to inspect it below.")
    selected = st.session_state.get(session.KEY_INSTANCE)
    fig = session.memo("attack.grid", (*memo_key, key, selected), lambda: _grid_figure(s, view, indices, title, selected))
    st.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points", width="content",
                    config={"displayModeBar": False})


def _grid_figure(s, view: AttackView, indices: np.ndarray, title: str, selected: int | None):
    position = {int(i): k for k, i in enumerate(view.indices)}
    order = clearest_first(view, indices, GRID_LIMIT)
    images = s.data.train.display_images(order)
    captions = [f"Image #{i} · {view.metric} {view.values_model[position[int(i)]]:.2f}" for i in order]
    return grids.image_grid_figure(images, order, columns=GRID_COLUMNS, captions=captions, selected=selected,
                                   title=f"{title}: {indices.size}" + (f" (first {GRID_LIMIT} shown)"
                                                                       if indices.size > GRID_LIMIT else ""))


def model_column(s, which: str, label: str, view: AttackView, result: dict, memo_key: tuple) -> None:
    """Everything the page shows for one model against the Retrained model."""
    color = figures.MODEL_COLORS[which.upper()]
    st.subheader(md(label))
    lo, hi = METRIC_RANGES[view.metric]
    settings().setdefault("shown", {})[which] = (view.metric, float(view.threshold))
    session.bind(f"attack_threshold_{which}", float(np.clip(round(view.threshold, 3), lo, hi)))
    st.slider(
        f"Threshold ({METRIC_LABELS[view.metric]})", min_value=float(lo), max_value=float(hi),
        step=(hi - lo) / 100, key=f"attack_threshold_{which}", on_change=_on_slider, args=(which, view.metric),
        help="Images on one side of the threshold are called 'this model', the others 'Retrained'. Moving the "
             "slider switches the strategy to Custom.",
    )
    metrics = [*st.columns([3, 2]), *st.columns([3, 2])]  # two rows: the labels stay whole in half a page
    metrics[0].metric("Privacy score at this threshold", f"{view.privacy_score:.3f}",
                      help="1 − attack score at this threshold: 1 = the attack cannot tell this model from the "
                           "Retrained one (higher is better). The table's PS is the worst case over both metrics "
                           "and the 51-point threshold grid, named below.")
    metrics[1].metric("Attack score", f"{view.attack_score:.3f}",
                      help="How well the attack separates the two models at this threshold, from its error rates "
                           "(0 = chance, 1 = perfect; lower is better for privacy).")
    metrics[2].metric("FPR", f"{view.choice.fpr:.3f}",
                      help="False positive rate: share of the Retrained model's values the attack wrongly calls "
                           "this model (higher is better for privacy).")
    metrics[3].metric("FNR", f"{view.choice.fnr:.3f}",
                      help="False negative rate: share of this model's values the attack misses (higher is better "
                           "for privacy).")
    st.caption(f"Success rate {view.success_rate:.1%} of all images labelled right · threshold {view.threshold:.3f} "
               f"({'values ≥ threshold called this model' if view.direction == 'above_unlearn' else 'values ≥ threshold called Retrained'})"
               " · " + worst_case_text(result["metrics"]))
    distribution = session.memo("attack.distribution", (*memo_key, label), lambda: figures.attack_distribution_figure(
        view.values_model, view.values_retrained, view.metric, view.threshold, label, direction=view.direction,
        color=color).update_layout(title_text=f"Model {which.upper()} vs Retrained on the forget images"))
    st.plotly_chart(distribution, key=f"attack_distribution_{which}", width="stretch")
    lo_text, hi_text = f"{lo:g}", f"{hi:g}"
    st.caption(f"The attack feature of every forget image under this model and under the Retrained model. The "
               f"attack clips values into [{lo_text}, {hi_text}]: values beyond it are counted in the edge bin "
               "(“≥”/“≤” on the axis).",
               help="The more the two histograms overlap, the less an attacker can tell the models apart "
                    "(overlap is better for privacy).")
    curves = session.memo("attack.curves", memo_key, lambda: figures.attack_curves_figure(
        view.sweep, view.threshold, view.direction, metric=view.metric, title="Attack score, FPR and FNR by threshold"))
    st.plotly_chart(curves, key=f"attack_curves_{which}", width="stretch")
    st.caption("How good the attack is at every threshold; the dashed line marks the chosen one.",
               help="Attack score: 0 = no better than guessing, 1 = always right (lower is better for privacy). FPR "
                    "and FNR: the attack's two kinds of mistakes (higher is better for privacy).")
    image_grid(s, view, view.high_risk, "High-risk images (attack succeeds)", f"attack_grid_success_{which}", memo_key)
    image_grid(s, view, view.low_risk, "Low-risk images (attack fails)", f"attack_grid_failure_{which}", memo_key)


def instance_panel(s, a: dict, b: dict, labels: tuple[str, str], views: dict[str, AttackView]) -> None:
    st.header("Instance", help=instance_help(s.forget_set.text))
    index = st.session_state.get(session.KEY_INSTANCE)
    # Both models' attack values must cover it (a comparator import covers 200 forget images only).
    forget_images = set(views["a"].indices.tolist()) & set(views["b"].indices.tolist())
    if index is None or index not in forget_images:
        st.caption("Click an image in a grid above to see it with both models' probabilities.")
        return
    names = list(s.spec.class_names)
    left, right = st.columns([1, 3])
    missing = images_problem(s)
    if missing:
        left.caption(f"Image #{index}. {md(missing, 2000)}")
    else:
        left.image(widgets.display_image(s, index),
                   caption=f"Image #{index} · class {names[int(s.data.train.labels_np[index])]}")
    for which, view in views.items():
        k = int(np.flatnonzero(view.indices == index)[0])
        left.caption(f"{md(labels[0] if which == 'a' else labels[1])}: {view.metric} {view.values_model[k]:.3f} "
                     f"(Retrained {view.values_retrained[k]:.3f})")
    lo, hi = METRIC_RANGES[views["a"].metric]
    left.caption(f"Values as computed, not clipped: the histograms and the attack clip them into [{lo:g}, {hi:g}].")
    fig = session.memo("attack.probabilities", (a["id"], b["id"], *labels, index), lambda: figures.probability_bars_figure(
        *instance_probabilities(a, b, index), names, *labels, forget_class=s.forget_classes,
        title=f"Class probabilities for image #{index}"))
    right.plotly_chart(fig, key="attack_probabilities", width="stretch")


s = session.scenario()
st.title("Attack")
st.caption(f"Scenario: {session.scenario_label(s)}. A membership-inference attack sees one number per forget image "
           "(entropy or confidence of the prediction) and guesses which model produced it: the one under test or the "
           "Retrained model. If it cannot tell them apart, the model forgot like retraining would.")
with st.expander("How to read the privacy figures"):
    st.markdown(PRIVACY_READING)
listing = session.experiments(s)
a_id, b_id = (session.existing(i, listing) for i in session.model_ids())
if not attack_reference_ready(listing):
    widgets.hint("The Retrained reference model of this scenario is not ready. Start on Home: prepare the reference "
                 "models; then run an unlearning method on Build.", "home", "Go to Home")
    st.stop()
widgets.require_model_pair(a_id, b_id)
result_a, result_b = session.load_result(a_id), session.load_result(b_id)
model_labels = (f"A: {experiment_label(result_a)}", f"B: {experiment_label(result_b)}")
threshold_tab, ulira_tab, relearn_tab, ensembles_tab = session.attack_tabs()  # open on the session's tab (kept in the URL)
with threshold_tab:
    control_slot = st.container()  # drawn once the views say which metric they plot
    metric, strategy = settings()["metric"], settings()["strategy"]
    for grid_key in GRID_KEYS:  # the latest click in any grid picks the instance
        picked = session.new_selection(grid_key, figures.selection_indices)
        if picked:
            st.session_state[session.KEY_INSTANCE] = picked[0]
    keys: dict[str, tuple] = {}
    attack_views: dict[str, AttackView] = {}
    with widgets.view_errors():
        # Each model against its own Retrained model: the reference, or for a comparator import the
        # comparator's Retrained file (the same 200 forget images).
        for which, result, other in (("a", result_a, result_b), ("b", result_b, result_a)):
            retrained_id = attack_reference_id(result, listing)
            keys[which] = view_key(which, (a_id, b_id, retrained_id), metric, strategy)
            attack_views[which] = compute_view(keys[which], result, session.load_result(retrained_id), other)
    with control_slot:
        controls({f"Model {which.upper()}": view.metric for which, view in attack_views.items()})
    if len(attack_views) == 2:
        with widgets.view_errors():
            columns = st.columns(2)
            for column, which, model_label, result in ((columns[0], "a", model_labels[0], result_a),
                                                       (columns[1], "b", model_labels[1], result_b)):
                with column:
                    model_column(s, which, model_label, attack_views[which], result, keys[which])
            instance_panel(s, result_a, result_b, model_labels, attack_views)
with ulira_tab:
    audit_tabs.ulira_tab(s, model_labels, (result_a, result_b))
with relearn_tab:
    audit_tabs.relearn_tab(model_labels, (result_a, result_b))
with ensembles_tab:
    ensemble_tab.ensemble_tab(s, model_labels, (result_a, result_b), listing)
