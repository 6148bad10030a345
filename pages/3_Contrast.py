"""Contrast: Model A vs Model B class by class (accuracy, prediction matrices), image by image
(the twin embedding, with linked selection and an instance panel) and layer by layer (CKA)."""

import numpy as np
import streamlit as st

from mucomp.embedding import FILTERS, probabilities
from mucomp.results import (
    cka_frame_for,
    cka_layers,
    class_accuracy,
    experiment_label,
    probe_frame,
    retain_gap_of,
    stored_audit,
    stored_prediction_matrix,
    twin_embedding,
)
from mucomp.results.imported import missing_figure_note
from mucomp.ui import figures, session, widgets
from mucomp.ui.text import ContrastWords, contrast_words, md, probe_reading
from mucomp.ui.thumbnails import images_problem

session.setup("Contrast")

KEY_SELECTION = "mucomp_contrast_selection"
SPLIT_LABELS = {"train": "Training images", "test": "Test images"}
ACCURACY_VIEWS = {"difference": "A − B", "grouped": "Side by side"}


def split_choice(key: str, help_text: str) -> str:
    return st.segmented_control("Split", list(SPLIT_LABELS), default="train", key=key, format_func=SPLIT_LABELS.get,
                                help=help_text) or "train"


def accuracy_section(ids: tuple[str, str], a: dict, b: dict, names, forget: tuple[int, ...], labels: tuple[str, str],
                     words: ContrastWords) -> None:
    st.header("Class-wise accuracy", help=words.accuracy_help)
    split = split_choice("contrast_acc_split", "Accuracy on the training images (what the model saw) or on the "
                                               "held-out test images.")
    table = session.memo("contrast.accuracy", (*ids, split), lambda: class_accuracy(a, b, None, split,
                                                                                    class_names=names))
    gap = retain_gap_of(table)
    left, right, view = st.columns([1, 1, 2], vertical_alignment="bottom")
    forget_key = "UA" if split == "train" else "TUA"  # the forget set's accuracy on this split
    ua_a, ua_b = a["metrics"].get(forget_key), b["metrics"].get(forget_key)
    left.metric(words.forget_metric_label, "n/a" if None in (ua_a, ua_b) else f"{(ua_a - ua_b) * 100:+.1f} pp",
                help=words.forget_metric_help)
    right.metric("Average retain gap", "n/a" if np.isnan(gap) else f"{gap * 100:.1f} pp", help=words.retain_gap_help)
    # Differences first: the view asks how A and B differ class by class (the published comparator's
    # view); the absolute accuracies are one click away and in every bar's hover.
    bars = view.segmented_control(
        "Bars", list(ACCURACY_VIEWS), default="difference", key="contrast_acc_view", format_func=ACCURACY_VIEWS.get,
        help="A − B: one bar per class, up where Model A recognises more of the class, down where Model B does. "
             "Side by side: both models' accuracies.",
    ) or "difference"
    build = figures.class_difference_figure if bars == "difference" else figures.class_accuracy_figure
    fig = session.memo("contrast.accuracy_figure", (*ids, split, bars),
                       lambda: build(table, names, forget, *labels))
    st.plotly_chart(fig, key="contrast_accuracy", width="stretch")
    st.caption(words.difference_caption if bars == "difference" else words.grouped_caption)


def matrix_section(ids: tuple[str, str], a: dict, b: dict, names, forget: tuple[int, ...], labels: tuple[str, str],
                   words: ContrastWords) -> None:
    st.header("Prediction matrices", help=words.matrix_help)
    left, right = st.columns(2)
    with left:
        split = split_choice("contrast_matrix_split", "Predictions on the training or the test images.")
    kind = right.segmented_control(
        "Cell value", ["label", "conf"], default="label", key="contrast_matrix_kind",
        format_func={"label": "Share predicted", "conf": "Mean probability"}.get,
        help="Share predicted: which classes the images of each true class were assigned to. Mean probability: "
             "how much probability the model gave each class on average.",
    ) or "label"
    columns = st.columns(2)
    for column, result, label, which, experiment_id in ((columns[0], a, labels[0], "a", ids[0]),
                                                        (columns[1], b, labels[1], "b", ids[1])):
        fig = session.memo("contrast.matrix", (experiment_id, label, split, kind), lambda r=result, lb=label:
                           figures.prediction_matrix_figure(stored_prediction_matrix(r, split, kind), names, lb, kind,
                                                            forget_class=forget))
        column.plotly_chart(fig, key=f"contrast_matrix_{which}", width="stretch")
    st.caption(words.matrix_caption)


def _clear_selection() -> None:
    st.session_state[KEY_SELECTION] = []


def embedding_section(s, ids: tuple[str, str], a: dict, b: dict, names, forget: tuple[int, ...], labels: tuple[str, str],
                      words: ContrastWords) -> None:
    st.header("Embedding space", help=words.embedding_help)
    st.caption(words.embedding_caption)
    # True classes come with the stored points (the data set is loaded only for results older than them).
    points = session.memo("contrast.points", ids, lambda: twin_embedding(a, b))
    filter_name = st.columns([1, 2])[0].selectbox(
        "Show", list(FILTERS), format_func=FILTERS.get, key="contrast_filter",
        help=words.filter_help,
    )
    present = session.memo("contrast.point_set", ids, lambda: frozenset(points["index"].tolist()))
    for which in ("a", "b"):  # the latest selection in either map wins
        picked = session.new_selection(f"contrast_embedding_{which}", figures.selection_indices)
        if picked is not None:
            st.session_state[KEY_SELECTION] = picked
    selected = [i for i in st.session_state.get(KEY_SELECTION, []) if i in present]
    columns = st.columns(2)
    for column, which, label in ((columns[0], "a", labels[0]), (columns[1], "b", labels[1])):
        fig = session.memo("contrast.embedding", (*ids, which, label, filter_name, tuple(selected)), lambda w=which, lb=label:
                           figures.embedding_figure(points, w, names, forget, filter_name, highlight=selected, title=lb))
        column.plotly_chart(fig, key=f"contrast_embedding_{which}", on_select="rerun",
                            selection_mode=("points", "box", "lasso"), width="stretch")
    if not selected:
        st.caption("Select a point to see its image and both models' probabilities.")
        return
    st.button(f"Clear the selection ({len(selected)} image{'s' if len(selected) != 1 else ''})",
              on_click=_clear_selection, key="contrast_clear")
    instance_panel(s, ids, points, selected, names, forget, labels)


def _probability_figure(points, index: int, names, forget: tuple[int, ...], labels: tuple[str, str]):
    row = points[points["index"] == index]
    return figures.probability_bars_figure(probabilities(row, "a")[0], probabilities(row, "b")[0], names, *labels,
                                           forget_class=forget, title=f"Class probabilities for image #{index}")


def instance_panel(s, ids: tuple[str, str], points, selected: list[int], names, forget: tuple[int, ...],
                   labels: tuple[str, str]) -> None:
    """The image of one selected point and both models' class probabilities."""
    index = selected[0]
    if len(selected) > 1:
        index = st.selectbox("Image", selected, key="contrast_instance", format_func=lambda i: f"#{i}",
                             help="The selected images; pick one to inspect.")
    row = points[points["index"] == index].iloc[0]
    left, right = st.columns([1, 3])
    missing = images_problem(s)
    if missing:  # imported results without the data set on disk: the probabilities still show
        left.caption(f"Image #{index} · true class {names[int(row['true_class'])]}. {md(missing, 2000)}")
    else:
        left.image(widgets.display_image(s, index), caption=f"Image #{index} · true class {names[int(row['true_class'])]}")
    fig = session.memo("contrast.probabilities", (*ids, *labels, index),
                       lambda: _probability_figure(points, index, names, forget, labels))
    right.plotly_chart(fig, key="contrast_probabilities", width="stretch")


def cka_section(ids: tuple[str, str], a: dict, b: dict, labels: tuple[str, str], words: ContrastWords) -> None:
    st.header("Layer-wise similarity", help=words.cka_help)
    left, right = st.columns(2)
    reference = left.segmented_control(
        "Compared with", ["original", "retrained"], default="retrained", key="contrast_cka_reference",
        format_func=str.capitalize,
        help="CKA measures how alike two models' representations are at each layer (1 = identical up to rotation "
             "and scale). Against the Retrained model, higher on the forget images means closer to the gold standard.",
    ) or "retrained"
    with right:
        split = split_choice("contrast_cka_split", "Images the representations are computed on.")
    fig = session.memo("contrast.cka", (*ids, *labels, reference, split), lambda: figures.cka_figure(
        cka_frame_for(a, b, reference), cka_layers(a), f"CKA against the {reference.capitalize()} model", split=split,
        model_labels={"A": labels[0], "B": labels[1]}))
    st.plotly_chart(fig, key="contrast_cka", width="stretch")
    st.caption(words.cka_caption)


def leakage_section(ids: tuple[str, str], a: dict, b: dict, names, forget: tuple[int, ...], labels: tuple[str, str],
                    words: ContrastWords) -> None:
    st.header("Class leakage", help=words.leakage_help)
    leaks = {label: leak for label, result in zip(labels, (a, b), strict=True)
             if (leak := stored_audit(result, "leakage")) is not None}
    if not leaks:
        st.info(missing_figure_note((a, b), "class leakage"))
        return
    fig = session.memo("contrast.leakage", (*ids, *labels), lambda: figures.leakage_figure(leaks, names, forget))
    st.plotly_chart(fig, key="contrast_leakage", width="stretch")
    columns = st.columns(len(leaks))
    for column, (label, leak) in zip(columns, leaks.items(), strict=True):
        column.metric(f"{md(label)}: JS divergence to Retrained", f"{leak['js_mean']:.3f}",
                      help="Mean over the forget images of the Jensen-Shannon divergence (natural log, 0 to 0.693) "
                           "between this model's and the Retrained model's predicted distributions: 0 = the same.")
        column.caption(f"Rank of {words.rank_of} in the forget images' predictions: mean {leak['mean_rank']:.2f} "
                       f"(Retrained {leak['retrained_mean_rank']:.2f}; 1 = still the top class).")


def probe_section(s, ids: tuple[str, str], a: dict, b: dict, retrained: dict | None, layers, labels: tuple[str, str],
                  words: ContrastWords) -> None:
    st.header("Layer-wise decodability", help=words.probe_help)
    results = {labels[0]: a, labels[1]: b, **({"retrained": retrained} if retrained is not None else {})}
    frame = probe_frame(results, layers)
    if frame.empty:
        st.info(missing_figure_note((a, b), "the layer-wise probes"))
        return
    reading = probe_reading(frame["auc"], s.forget_set, s.dataset)
    if not reading.chart:  # nothing to draw: say why instead of an empty chart
        st.info(reading.note, icon=":material/info:")
        return
    fig = session.memo("contrast.probes", (*ids, *labels, retrained.get("id") if retrained else None),
                       lambda: figures.probe_figure(frame, layers))
    st.plotly_chart(fig, key="contrast_probes", width="stretch")
    st.caption("Probe: standardised activations, PCA to at most 256 dimensions, logistic regression fitted on the "
               "training subsets, ROC AUC on the test subsets. Hover: the excess over the Retrained model.")
    if reading.note:
        st.info(reading.note, icon=":material/info:")


s = session.scenario()
st.title("Contrast")
st.caption(f"Scenario: {session.scenario_label(s)}. Model A against Model B, class by class, image by image and "
           "layer by layer.")
listing = session.experiments(s)
a_id, b_id = (session.existing(i, listing) for i in session.model_ids())
if not listing:
    widgets.hint("No experiments yet for this scenario. Start on Home: prepare the reference models; then run an "
                 "unlearning method on Build.", "home", "Go to Home")
    st.stop()
widgets.require_model_pair(a_id, b_id)
result_a, result_b = session.load_result(a_id), session.load_result(b_id)
model_labels = (f"A: {experiment_label(result_a)}", f"B: {experiment_label(result_b)}")
class_names = list(s.spec.class_names)
forget_class = s.forget_classes  # () for a random or index forget set: no class is marked
pair = (a_id, b_id)
words = contrast_words(s.forget_set, class_names)  # every help and caption follows the forget-set kind
with widgets.view_errors():
    accuracy_section(pair, result_a, result_b, class_names, forget_class, model_labels, words)
with widgets.view_errors():
    matrix_section(pair, result_a, result_b, class_names, forget_class, model_labels, words)
with widgets.view_errors():
    embedding_section(s, pair, result_a, result_b, class_names, forget_class, model_labels, words)
with widgets.view_errors():
    leakage_section(pair, result_a, result_b, class_names, forget_class, model_labels, words)
with widgets.view_errors():
    cka_section(pair, result_a, result_b, model_labels, words)
with widgets.view_errors():
    retrained_id = session.reference_ids(listing).get("retrained")
    probe_section(s, pair, result_a, result_b, session.load_result(retrained_id) if retrained_id else None,
                  cka_layers(result_a), model_labels, words)
