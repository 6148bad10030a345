"""Home: what the Comparator is, the scenario (data set, forget class, seed), the reference models'
readiness and a guided first pass through Build -> Screen -> Contrast -> Attack."""

import streamlit as st

from mucomp.data import DATASETS, Scenario
from mucomp.ui import session, widgets

session.setup("Home")


def _on_scenario_change() -> None:
    dataset = st.session_state["home_dataset"]
    spec = DATASETS[dataset]
    forget = min(int(st.session_state["home_forget"]), spec.num_classes - 1)
    session.set_scenario(Scenario(dataset, forget, int(st.session_state["home_seed"])))


def scenario_controls() -> Scenario:
    """Data set, forget class (by name) and seed, bound to the session's scenario."""
    s = session.scenario()
    session.bind("home_dataset", s.dataset)
    session.bind("home_forget", s.forget_class)
    session.bind("home_seed", s.seed)
    left, middle, right = st.columns([2, 2, 1])
    left.selectbox(
        "Data set and model", list(DATASETS), key="home_dataset", on_change=_on_scenario_change,
        format_func=lambda name: DATASETS[name].label,
        help="The images and the classifier to unlearn from. Digits runs offline on a CPU in seconds; "
             "CIFAR-10 and Fashion-MNIST download data and published models and want a GPU.",
    )
    spec = DATASETS[st.session_state["home_dataset"]]
    middle.selectbox(
        "Class to forget", list(range(spec.num_classes)), key="home_forget", on_change=_on_scenario_change,
        format_func=lambda k: f"{spec.class_names[k]} (class {k})",
        help="Every training image of this class is the forget set: an unlearning method should make "
             "the model behave as if it had never seen them.",
    )
    right.number_input(
        "Seed", min_value=0, max_value=2**31 - 1, step=1, key="home_seed", on_change=_on_scenario_change,
        help="One number that fixes every random choice (data order, subsets, UMAP): the same settings "
             "give the same results.",
    )
    s = session.scenario()
    st.caption(f"{s.spec.description}. Model: `{s.spec.arch}`.")
    return s


def guide(s: Scenario, ready: bool) -> None:
    """A checklist walking a first-time user through one complete pass."""
    listing = session.experiments(s)
    ran = any(r.get("kind") in ("unlearned", "custom") for r in listing)
    a, b = session.model_ids()
    visited = st.session_state[session.KEY_VISITED]
    steps = [
        (ready, "Prepare the reference models (above).",
         "The **Original** model learnt every class; the **Retrained** model was trained without the forget "
         "class. Retraining is the gold standard every unlearning method tries to imitate, cheaply.", None),
        (ran, "**Build** an unlearned model.",
         "Choose *Gradient ascent (GA)*, keep the suggested hyper-parameters and press **Run**. The run goes "
         "on in the background: you can watch its epochs and the forget accuracy fall.", "build"),
        (a is not None and b is not None, "**Screen** the experiments and pick two models.",
         "The table lists every experiment with its accuracy, time and privacy figures (hover a column "
         "name for what it means). Choose *Original* as Model A and your GA run as Model B.", "screen"),
        ("contrast" in visited, "**Contrast** Model A with Model B.",
         "Class-wise accuracy shows whether only the forget class was lost; the embedding shows where the "
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
    "Machine unlearning removes what a trained model learnt from some of its data — here, one whole "
    "class — without training it again from scratch. This tool runs unlearning methods and compares "
    "them on three principles: **accuracy** (is the forget class gone, is the rest kept?), "
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
    from mucomp.compare import COLUMN_HELP, DEFINITIONS_POINTER

    for column in ("UA", "RA", "TUA", "TRA", "RT", "PS", "MIA", "Avg. Gap"):
        st.markdown(f"- **{column}**: {COLUMN_HELP[column]}")
    st.caption(f"Probabilities shown anywhere are softmax at T = 1; only the attack's entropy feature uses "
               f"T = 2. {DEFINITIONS_POINTER}")
