"""Home: what the Comparator is, the scenario (data set and model, forget set, seeds), the reference
models' readiness and a guided first pass through Build -> Screen -> Contrast -> Attack."""

import streamlit as st

from mucomp.data import DATASETS, Scenario
from mucomp.forget_sets import (
    ForgetSet,
    forget_words,
    index_set,
    min_random_percent,
    of_classes,
    parse_index_text,
    random_share_text,
)
from mucomp.recipes import TRAINING_SPEEDS, recipe_for
from mucomp.specs import ARCH_LABELS
from mucomp.ui import session, widgets

session.setup("Home")


FORGET_KINDS = {"class": "One class", "classes": "Several classes", "random": "Random images", "indices": "Listed images"}


def _forget_from_controls(spec) -> str | ForgetSet:
    """The forget set the Home controls describe. A class picker's value counts only while the
    forget set is of its kind: a picker that was just shown again (its kind chosen anew) may hold
    nothing or another data set's value, so it starts from the classes forgotten now."""
    kind = st.session_state.get("home_forget_kind", "class")
    current = session.scenario().forget_set
    if kind == "classes":
        picked = st.session_state.get("home_forget_classes") if current.kind == "classes" else None
        return of_classes(session.classes_choice(picked, spec.num_classes, current.classes)).text
    if kind == "random":
        return random_share_text(float(st.session_state.get("home_forget_percent", 10.0)))
    if kind == "indices" and current.kind == "indices":
        return current
    picked = st.session_state.get("home_forget") if current.kind == "class" else None
    return of_classes(session.class_choice(picked, spec.num_classes, current.classes)).text


def _on_scenario_change() -> None:
    dataset = st.session_state["home_dataset"]
    spec = DATASETS[dataset]
    arch = st.session_state.get("home_arch")
    try:
        new = Scenario(dataset, None, int(st.session_state["home_seed"]), _forget_from_controls(spec),
                       int(st.session_state.get("home_data_seed", 0)), arch if arch in spec.archs else None)
    except ValueError as err:
        st.session_state["home_problem"] = str(err)
        return
    st.session_state["home_problem"] = None
    session.set_scenario(new)


def _on_index_file() -> None:
    upload = st.session_state.get("home_index_file")
    if upload is None:
        return
    try:
        forget = index_set(parse_index_text(upload.getvalue()))
        s = session.scenario()
        new = Scenario(s.dataset, None, s.train_seed, forget, s.data_seed, s.arch)
        new.forget_indices  # noqa: B018  (checks every index against the training split now)
    except ValueError as err:
        st.session_state["home_problem"] = f"The index file was not used: {err}"
        return
    st.session_state["home_problem"] = None
    session.set_scenario(new)


def scenario_controls() -> Scenario:
    """Data set and model, the forget set (one class by name, several classes, a random share or
    listed images) and the seeds, bound to the session's scenario."""
    s = session.scenario()
    forget = s.forget_set
    session.bind("home_dataset", s.dataset)
    session.bind("home_arch", s.arch)
    if not (st.session_state.get("home_forget_kind") == "indices" and forget.kind != "indices"):
        session.bind("home_forget_kind", forget.kind)  # (an index set waits for its file)
    # The class pickers always hold a class of this data set, named with its labels.
    if st.session_state["home_forget_kind"] == "class":
        session.bind("home_forget", session.class_choice(None, s.spec.num_classes, forget.classes),
                     labels_of=s.dataset)
    if st.session_state["home_forget_kind"] == "classes":
        session.bind("home_forget_classes", session.classes_choice(forget.classes, s.spec.num_classes),
                     labels_of=s.dataset)
    session.bind("home_forget_percent", float(forget.percent) if forget.percent is not None else 10.0)
    session.bind("home_seed", s.train_seed)
    session.bind("home_data_seed", s.data_seed)
    left, middle, right = st.columns([2, 2, 1])
    left.selectbox(
        "Data set and model", list(DATASETS), key="home_dataset", on_change=_on_scenario_change,
        format_func=lambda name: DATASETS[name].label,
        help="The images and the classifier to unlearn from. Digits runs offline on a CPU in seconds; "
             "Fashion-MNIST with fmnist_cnn runs on a CPU in minutes (from Debian's dataset-fashion-mnist or a "
             "download); CIFAR-10 and the ResNet-18s download data and published models and want a GPU.",
    )
    spec = DATASETS[st.session_state["home_dataset"]]
    if len(spec.archs) > 1:
        left.selectbox("Architecture", list(spec.archs), key="home_arch", on_change=_on_scenario_change,
                       format_func=lambda arch: ARCH_LABELS.get(arch, arch),
                       help="The classifier's architecture: the data set's default or an alternative (a model "
                            "trained here on a CPU, or a transformer to compare how a CNN and a transformer forget).")
    middle.selectbox(
        "What to forget", list(FORGET_KINDS), key="home_forget_kind", on_change=_on_scenario_change,
        format_func=FORGET_KINDS.get,
        help="One class (the default), several classes, a random share of the training images (the "
             "random-forgetting setting of SalUn and Sparse), or training images listed in a file.",
    )
    kind = st.session_state["home_forget_kind"]
    if kind == "class":
        middle.selectbox(
            "Class to forget", list(range(spec.num_classes)), key="home_forget", on_change=_on_scenario_change,
            format_func=lambda k: f"{spec.class_names[k]} (class {k})",
            help="Every training image of this class is the forget set: an unlearning method should make "
                 "the model behave as if it had never seen them.",
        )
    elif kind == "classes":
        middle.multiselect(
            "Classes to forget", list(range(spec.num_classes)), key="home_forget_classes",
            on_change=_on_scenario_change, format_func=lambda k: f"{spec.class_names[k]} (class {k})",
            max_selections=spec.num_classes - 1, help="Every training image of these classes is forgotten.",
        )
    elif kind == "random":
        middle.number_input(
            "Share of training images to forget (%)", min_value=min_random_percent(spec), max_value=99.0, step=1.0,
            key="home_forget_percent", on_change=_on_scenario_change,
            help="Drawn uniformly from the training split with the data seed. Accuracies are then over images: "
                 "UA on the forget images, RA on the rest, TRA on every test image (TUA has no meaning).",
        )
    else:
        middle.file_uploader(
            "Training indices to forget (text, one per line)", type=["txt", "csv"], key="home_index_file",
            on_change=_on_index_file, help="Positions in the training split, one per line; # starts a comment.",
        )
    right.number_input(
        "Training seed", min_value=0, max_value=2**31 - 1, step=1, key="home_seed", on_change=_on_scenario_change,
        help="Trains the reference models (Original and Retrained). Each unlearning run has its own seed "
             "(Build); runs that differ only in seeds are replicates of one group.",
    )
    right.number_input(
        "Data seed", min_value=0, max_value=2**31 - 1, step=1, key="home_data_seed", on_change=_on_scenario_change,
        help="Draws a random forget set and the fixed subsets (embedding, CKA, attack members). Keep it fixed "
             "to compare training seeds on the same images.",
    )
    if st.session_state.get("home_problem"):
        st.error(st.session_state["home_problem"])
    s = session.scenario()
    st.caption(f"{s.spec.description}. Model: `{s.arch}`. Forget set: {s.forget_set.describe(s.spec)}.")
    if not s.by_class and s.spec.needs_download and s.arch not in TRAINING_SPEEDS:
        st.info(f"The published {s.spec.label} references serve one forgotten class. For this forget set both "
                f"references are trained here ({recipe_for(s.dataset, s.arch).epochs} epochs each): hours on a CPU, a GPU "
                "is advised.", icon=":material/schedule:")
    return s


def guide(s: Scenario, ready: bool) -> None:
    """A checklist walking a first-time user through one complete pass."""
    listing = session.experiments(s)
    ran = any(r.get("kind") in ("unlearned", "custom") for r in listing)
    a, b = session.model_ids()
    visited = st.session_state[session.KEY_VISITED]
    words = forget_words(s.forget_set)
    steps = [
        (ready, "Prepare the reference models (above).",
         f"The **Original** model learnt from every training image; the **Retrained** model was trained without "
         f"{words.noun}. Retraining is the gold standard every unlearning method tries to imitate, cheaply.", None),
        (ran, "**Build** an unlearned model.",
         "Choose *Gradient ascent (GA)*, keep the suggested hyper-parameters and press **Run**. The run goes "
         f"on in the background: you can watch its epochs and {words.goal}.", "build"),
        (a is not None and b is not None, "**Screen** the experiments and pick two models.",
         "The table lists every experiment with its accuracy, time and privacy figures (hover a column "
         "name for what it means). Choose *Original* as Model A and your GA run as Model B.", "screen"),
        ("contrast" in visited, "**Contrast** Model A with Model B.",
         f"Class-wise accuracy shows {words.kept}; the embedding shows where the "
         "forget images moved; layer-wise similarity shows which layers changed.", "contrast"),
        ("attack" in visited, "**Attack** both models.",
         "A membership-inference attack tries to tell each model from the Retrained one on the forget images. "
         "A privacy score near 1 means it cannot: the model forgot like retraining would.", "attack"),
    ]
    for number, (done, title, text, page) in enumerate(steps, start=1):
        mark = ":green[:material/check_circle:]" if done else ":gray[:material/radio_button_unchecked:]"
        st.markdown(f"{mark} **{number}.** {title} {text}")
        if page is not None:
            st.page_link(session.PAGES[page], label=f"Go to {page.capitalize()}", icon=":material/arrow_forward:")


st.title("Machine Unlearning Comparator")
st.markdown(
    "Machine unlearning removes what a trained model learnt from some of its data (a whole class, several "
    "classes or chosen images) without training it again from scratch. This tool runs unlearning methods and compares "
    "them on three principles: **accuracy** (is the forget set forgotten, is the rest kept?), "
    "**efficiency** (how long did it take?) and **privacy** (can an attacker still tell the model "
    "saw the forgotten images?)."
)

st.header("1 · Scenario")
current = scenario_controls()
st.subheader("Reference models")
references_ready = widgets.reference_status(current, key="home_prepare")

st.header("2 · Your first pass")
guide(current, references_ready)

with st.expander("What the numbers mean"):
    from mucomp.catalogue import COLUMN_HELP, DEFINITIONS_POINTER

    for column in ("UA", "RA", "TUA", "TRA", "RT", "PS", "MIA", "Avg. Gap"):
        st.markdown(f"- **{column}**: {COLUMN_HELP[column]}")
    st.caption(f"Probabilities shown anywhere are softmax at T = 1; only the attack's entropy feature uses "
               f"T = 2. {DEFINITIONS_POINTER}")
