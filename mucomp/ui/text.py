"""Text the pages show: user-given text made safe for Streamlit's markdown, and the words that
follow the forget-set kind.

Streamlit renders ``st.markdown``, ``st.caption``, ``st.success`` / ``error`` / ``warning`` /
``info``, ``st.toast`` and headers as markdown with its own extensions (``:red[...]`` colours,
``:material/...:`` icons, ``$...$`` LaTeX). A label, owner, method name or file name typed or
imported by someone else must show as the characters it is, never as a link, an image (which
loads an external URL in every visitor's browser) or formatting: pass it through :func:`md`.

Whole classes are forgotten when their accuracy falls; images (a ``random:`` or ``indices:``
set) when the model behaves like the Retrained model, which never saw them and still classifies
most of them correctly (the SalUn convention: the gap to Retrain, :func:`mucomp.catalogue.direction`).
:func:`contrast_words`, :func:`probe_reading` and the relearning texts say each view's reading
for the scenario's kind, so no page speaks of "the forget class" when images were forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mucomp.catalogue import imagewise
from mucomp.display_text import for_markdown
from mucomp.forget_sets import ForgetSet, forget_words


def md(value: object, limit: int = 300) -> str:
    """``value`` as literal text inside markdown (:func:`mucomp.display_text.for_markdown`, the
    one escaping helper): special characters escaped, line breaks made spaces, escape sequences,
    bidi overrides and other control characters removed, at most ``limit`` characters (then ``…``)."""
    return for_markdown(value, limit)


# ---------------------------------------------------------------------------------------------
# Contrast: each view's reading, by the forget-set kind


@dataclass(frozen=True)
class ContrastWords:
    """The Contrast page's help texts and captions for one forget set (see :func:`contrast_words`)."""

    accuracy_help: str
    forget_metric_label: str
    forget_metric_help: str
    retain_gap_help: str
    difference_caption: str
    grouped_caption: str
    matrix_help: str
    matrix_caption: str
    embedding_help: str
    embedding_caption: str
    filter_help: str
    leakage_help: str
    rank_of: str
    cka_help: str
    cka_caption: str
    probe_help: str


_EMBEDDING_HOW = ("Each point is a training image placed by UMAP from the model's penultimate features: images a "
                  "model sees as alike sit together. Colour = the class the model predicts; ")
_EMBEDDING_CLICK = (" Model B's map is aligned onto Model A's so they read side by side. Click a point in either map "
                    "to highlight the same image in the other and inspect it below; for several, pick Box or Lasso "
                    "select in the chart's toolbar. Probabilities are softmax at T = 1, as on Attack.")
_GROUPED = "Bars: share of each class's images recognised by each model"
_DIFFERENCE = ("A − B in percentage points per class: above 0, Model A recognises more of the class's images; below, "
               "Model B does.")


def contrast_words(forget: ForgetSet, class_names: Sequence[str] = ()) -> ContrastWords:
    """The Contrast page's words for the forget set ``forget`` (``class_names``: the data set's):
    "lower is better" and the red marks for forgotten classes, "close to the Retrained model" and
    no class marked for forgotten images."""
    return _class_words(forget, class_names) if forget.by_class else _image_words(forget)


def _class_words(forget: ForgetSet, names: Sequence[str]) -> ContrastWords:
    noun = forget_words(forget).noun  # "the forget class" / "the forget classes"
    one = len(forget.classes) == 1
    what = f"class '{names[forget.classes[0]]}'" if one and len(names) > forget.classes[0] else "classes"
    marked = "the red-marked forget class" if one else "the red-marked forget classes"
    return ContrastWords(
        accuracy_help=("Share of each class's images each model recognises: higher is better for the other classes, "
                       f"lower is better for {noun}."),
        forget_metric_label=f"Forget {what}: A − B",
        forget_metric_help="Accuracy of Model A minus Model B on the forget set (lower accuracy = more forgotten).",
        retain_gap_help=("Mean absolute accuracy difference between A and B over the other classes (lower = the two "
                         "models keep the other classes alike)."),
        difference_caption=f"{_DIFFERENCE} For {marked}, lower accuracy = more forgotten.",
        grouped_caption=f"{_GROUPED} (higher = better kept; for {marked} lower = more forgotten).",
        matrix_help=("Which class each model predicts for the images of each true class: a good unlearned model moves "
                     f"the row{'' if one else 's'} of {noun} off the diagonal and keeps the others on it."),
        matrix_caption=("Rows: true class; columns: predicted class. A model that forgot the red-outlined "
                        f"class{'' if one else 'es'} spreads {'its row' if one else 'their rows'} over other "
                        "classes; the other rows should stay on the diagonal."),
        embedding_help=("Where each model places the images in its feature space: images of "
                        f"{noun} that leave their cluster were forgotten; other images should stay put."),
        embedding_caption=f"{_EMBEDDING_HOW}× = an image of {noun}.{_EMBEDDING_CLICK}",
        filter_help=(f"Target to forget: the images of {noun}. Correctly forgotten: forget images the model no longer "
                     "recognises. Not forgotten: forget images still recognised. Overly forgotten: other images the "
                     "model now gets wrong."),
        leakage_help=("Where the forget images' probability goes after unlearning, beside the Retrained model: a model "
                      f"that still ranks the forgotten class{'' if one else 'es'} high has hidden "
                      f"{'it' if one else 'them'}, not lost {'it' if one else 'them'}."),
        rank_of=f"'{names[forget.classes[0]]}'" if one and len(names) > forget.classes[0] else "each image's own class",
        cka_help=("CKA per layer between each model and the reference (1 = same representation): against the "
                  "Retrained model, higher is better."),
        cka_caption=(f"Solid lines: images of {noun}; dashed: the other classes. Unlearning usually changes the last "
                     "layers most."),
        probe_help=("A linear probe per layer tries to tell forget images from retain images (ROC AUC on the test "
                    "images; 0.5 = it cannot). Next to CKA: a class forgotten only in the head stays decodable in "
                    "earlier layers."),
    )


def _image_words(forget: ForgetSet) -> ContrastWords:
    kind = "random" if forget.kind == "random" else "listed"
    unseen = ("The forget images come from every class, and the Retrained model, which never saw them, still "
              "recognises most of them as it does unseen test images: ")
    return ContrastWords(
        accuracy_help=(f"Share of each class's images each model recognises. {unseen}every class should keep its "
                       "accuracy, close to the Retrained model's (no class is to be forgotten)."),
        forget_metric_label="Forget images: A − B",
        forget_metric_help=("Accuracy of Model A minus Model B on the forget images. For forgotten images the model "
                            "closer to the Retrained model's accuracy forgot better, not the lower one; the forget "
                            "images have no test images of their own (n/a on the test split)."),
        retain_gap_help=("Mean absolute accuracy difference between A and B over every class (the forget images are "
                         "spread over all of them; lower = the two models keep the classes alike)."),
        difference_caption=f"{_DIFFERENCE} The forget images are spread over every class: no class is marked.",
        grouped_caption=f"{_GROUPED}: higher = better kept, close to the Retrained model's for every class.",
        matrix_help=("Which class each model predicts for the images of each true class: the forget images are "
                     "spread over every class, so a good unlearned model keeps every row on the diagonal, like the "
                     "Retrained model."),
        matrix_caption=("Rows: true class; columns: predicted class. Every row should stay on the diagonal: the "
                        "forget images are a few of each class's, and a model that never saw them still recognises "
                        "most of them."),
        embedding_help=("Where each model places the images in its feature space: a model that forgot images the way "
                        "retraining does places them in their class's cluster, as it would an unseen image."),
        embedding_caption=f"{_EMBEDDING_HOW}× = a forget image ({kind} forget set).{_EMBEDDING_CLICK}",
        filter_help=("Target to forget: the forget images. Correctly forgotten / Not forgotten: forget images the "
                     "model gets wrong / still gets right (the Retrained model gets most of them right: 'not "
                     "forgotten' is expected here). Overly forgotten: other images the model now gets wrong."),
        leakage_help=("Where the forget images' probability goes, beside the Retrained model: for forgotten images "
                      "the model should predict them as the Retrained model does (JS divergence near 0)."),
        rank_of="each image's own class",
        cka_help=("CKA per layer between each model and the reference (1 = same representation): against the "
                  "Retrained model, higher is better, on the forget images as on the others."),
        cka_caption=("Solid lines: forget images; dashed: retain images. Unlearning usually changes the last layers "
                     "most."),
        probe_help=("A linear probe per layer tries to tell forget images from retain images (ROC AUC on held-out "
                    f"forget and retain images; 0.5 = it cannot). A {kind} forget set has no held-out forget images."),
    )


#: A probe AUC at or above this for every model and layer reads as "flat near 1".
FLAT_AUC = 0.95


@dataclass(frozen=True)
class ProbeReading:
    """Whether the decodability chart has anything to draw (``chart``) and a note on how to read
    it, or why it is empty (``note``; None when the chart speaks for itself)."""

    chart: bool
    note: str | None


def probe_reading(aucs: Iterable[float], forget: ForgetSet, dataset: str) -> ProbeReading:
    """How to read the stored probe AUCs (every model's and layer's) of one scenario.

    No finite AUC: nothing to draw, and why (an image forget set has no test forget images to
    score the probe on). Every AUC >= :data:`FLAT_AUC`: the chart is flat near 1, and why (the
    classes are linearly separable from the input on, so the probe finds the forget class in any
    layer, forgotten or not; the README's reading of digits).
    """
    finite = [float(a) for a in aucs if a is not None and math.isfinite(float(a))]
    if not finite:
        if not forget.by_class:
            kind = "random" if forget.kind == "random" else "listed"
            return ProbeReading(False, (
                f"No decodability for a {kind} forget set: the probe is scored on held-out forget images (test "
                "images of the forget set), and forget images drawn from the training images have none. Class "
                "leakage and CKA above compare the forget images with the Retrained model instead."))
        return ProbeReading(False, "No probe AUC was stored for these models; run them again to compute the probes.")
    if min(finite) < FLAT_AUC:
        return ProbeReading(True, None)
    noun, them = forget_words(forget).noun, "it" if len(forget.classes) == 1 else "them"
    others = "the other classes" if forget.by_class else "the retain images"
    where = ("On digits the classes are linearly separable from the pixels on" if dataset == "digits"
             else "These classes are linearly separable in every layer of these models")
    return ProbeReading(True, (
        f"Why the lines are flat near 1.0: every layer of every model, the Retrained one included, tells {noun} from "
        f"{others} (AUC ≥ {FLAT_AUC:g}). {where}, so a linear probe finds {noun} whether or not the model "
        f"forgot {them}: read each model's excess over the Retrained model (in the hover), not the level. The probe "
        "says more on harder data such as CIFAR-10."))


# ---------------------------------------------------------------------------------------------
# Attack: the relearning attack's reading, by the forget-set kind


RELEARN_HELP = (
    "A relearning attack (arXiv 2505.22310) fine-tunes a copy of the model on a few forget images plus retain "
    "images (solid lines) or on retain images only (dotted) and watches the other forget images' accuracy come "
    "back; the Retrained model under the same fine-tuning is the baseline. A class that returns much faster than "
    "for the Retrained model was hidden, not removed (a relative of 1 is like retraining; lower is worse)."
)
RELEARN_HELP_IMAGES = (
    "A relearning attack (arXiv 2505.22310) fine-tunes a copy of the model on a few forget images plus retain "
    "images (solid lines) or on retain images only (dotted) and measures the other forget images' accuracy, beside "
    "the Retrained model under the same fine-tuning. For forgotten images (a random or listed set) nothing has to "
    "come back: the Retrained model, which never saw them, already recognises most of them. Read how close each "
    "curve stays to the Retrained model's: a curve well above it means the images are remembered more than by a "
    "model that never saw them."
)


def relearn_help(forget: str | None) -> str:
    """What the relearning tab measures and how to read it for the forget set ``forget`` (its
    canonical text, e.g. a stored config's ``forget``; None: a class set)."""
    return RELEARN_HELP_IMAGES if imagewise(forget) else RELEARN_HELP


def relearn_steps_note(forget: str | None) -> str:
    """What to add to the help of the relative relearn steps for the forget set ``forget`` (its
    canonical text): nothing for a class set; for images, why there is usually no ratio."""
    if not imagewise(forget):
        return ""
    return (" For forgotten images both models usually start above that target (step 0), so there is no ratio "
            "(—): read the curves and the sentence under them.")


def epoch_help(forget: str | None) -> str:
    """How to read the per-epoch forget accuracy of an experiment for the forget set ``forget``
    (its canonical text)."""
    goal = ("should approach the Retrained model's (which still recognises most forgotten images)"
            if imagewise(forget) else "should fall towards the Retrained model's (about 0)")
    return f"Forget accuracy {goal}; a loss that keeps growing without bound is a sign the model is breaking."


def instance_help(forget: str | None) -> str:
    """How to read the Attack page's instance panel for the forget set ``forget`` (its canonical
    text; None: a class set)."""
    if imagewise(forget):
        return ("One forget image and the class probabilities both models give it. These images were forgotten one "
                "by one, not as a class: a model close to the Retrained model gives them about the probabilities "
                "the Retrained model gives, which usually still favour their true class.")
    return ("One forget image and the class probabilities both models give it: a model that forgot the class should "
            "not put its weight on the forget class.")
