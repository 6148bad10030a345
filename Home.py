"""mucomp home page: what the tool is and the scenario's reference models."""

import streamlit as st

from mucomp.data import DATASETS, Scenario

st.set_page_config(page_title="mucomp: Machine Unlearning Comparator", layout="wide")
st.title("Machine Unlearning Comparator")
st.write(
    "Compare how machine-unlearning methods trade off accuracy, efficiency and privacy. "
    "Pick a scenario, build unlearned models, screen them, contrast two of them and attack them."
)

dataset = st.selectbox("Dataset", list(DATASETS), format_func=lambda name: DATASETS[name].label)
spec = DATASETS[dataset]
forget = st.selectbox("Class to forget", range(spec.num_classes), format_func=lambda k: spec.class_names[k])
seed = st.number_input("Seed", min_value=0, value=0, step=1)
scenario = Scenario(dataset, int(forget), int(seed))

if st.button("Prepare reference models"):
    from mucomp.references import load_reference

    bar = st.progress(0.0, text="Original and Retrained models")
    for position, kind in enumerate(("original", "retrained")):
        def report(epoch, total, position=position, reference="", **_):
            bar.progress((position + epoch / total) / 2, text=f"training the {reference} model: epoch {epoch}/{total}")

        try:
            ref = load_reference(scenario, kind, progress=report)
        except Exception as err:
            st.error(str(err))
            break
        st.success(f"{kind.capitalize()} model ready ({ref.source}, {ref.seconds:.1f} s)")
    bar.progress(1.0, text="done")
