"""Forget sets other than one class through the app (issue 31, defects 2 and 3 and the readings
of decodability, relearning and U-LiRA): a random 10 % of digits and the two classes 3 and 5,
each with its stored Original, Retrained and one GA run.

Real runs, kept small: 3-epoch digits references (as tests/test_audits_deep.py), one GA epoch,
UMAP replaced by a projection (the Contrast page reads the stored points either way). The layer
probes are the real ones: a random set stores null AUCs, which once ended Contrast in a
traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mucomp import catalogue
from mucomp.results.attack import relearn_reading
from mucomp.ui import tables, text

ROOT = Path(__file__).resolve().parents[1]
RANDOM, CLASSES = "random:10%", "classes:3,5"
CONTRAST, SCREEN, ATTACK = "pages/3_Contrast.py", "pages/2_Screen.py", "pages/4_Attack.py"
SECTIONS = ["Class-wise accuracy", "Prediction matrices", "Embedding space", "Class leakage", "Layer-wise similarity",
            "Layer-wise decodability"]
#: Words that treat the forget set as whole classes: never shown for forgotten images.
CLASS_WORDING = re.compile(r"forget[- ]class|forgotten class|red-marked|red-outlined|class(?:es)? comes? back",
                           re.IGNORECASE)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A private MUCOMP_HOME holding, for each forget set, its references and one GA run."""
    import torch

    import mucomp.experiment.figures
    from mucomp import recipes
    from mucomp.data import Scenario
    from mucomp.runner import ExperimentConfig, clear_scenario_cache, prepare_scenario, run_experiment
    from mucomp.store import ExperimentStore
    from mucomp.training import TrainRecipe

    home = tmp_path_factory.mktemp("forget-kinds-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    patch.setitem(recipes.RECIPES, "digits", TrainRecipe(epochs=3, lr=0.1, batch_size=128))
    patch.setattr(mucomp.experiment.figures, "embed", lambda features, seed, init=None: np.asarray(features)[:, :2] * 1.0)
    threads = torch.get_num_threads()
    st.cache_data.clear()
    st.cache_resource.clear()
    store = ExperimentStore()
    ids = {}
    for forget in (RANDOM, CLASSES):
        scenario = Scenario("digits", None, 0, forget)
        state = prepare_scenario(scenario, store)
        run_experiment(ExperimentConfig.for_scenario(scenario, unlearn_seed=0, method="ga", epochs=1), store,
                       references=state)
        ids[forget] = {e["kind"]: e["id"] for e in store.entries(dataset="digits", forget=forget, train_seed=0)}
    yield SimpleNamespace(home=home, store=store, ids=ids)
    patch.undo()
    clear_scenario_cache()
    torch.set_num_threads(threads)
    st.cache_data.clear()
    st.cache_resource.clear()


def open_page(stored, forget: str, page: str, a: str = "retrained", b: str = "unlearned") -> AppTest:
    """``page`` of the digits scenario ``forget`` with Model A and B (kinds) from a shared link."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.query_params.update({"dataset": "digits", "forget": forget, "seed": "0", "a": stored.ids[forget][a],
                            "b": stored.ids[forget][b]})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def shown_text(at: AppTest) -> str:
    """Every text element, metric, header (with its help) and widget help of the page."""
    parts = [str(e.proto) for kind in ("caption", "info", "markdown", "header", "metric", "selectbox",
                                       "segmented_control", "expander")
             for e in at.get(kind)]
    return "\n".join(parts)


def test_contrast_draws_every_section_for_a_random_forget_set_and_says_why_no_decodability(stored):
    at = open_page(stored, RANDOM, CONTRAST)
    assert [h.value for h in at.header] == SECTIONS
    shown = charts(at)
    for key in ("contrast_accuracy", "contrast_matrix_a", "contrast_matrix_b", "contrast_embedding_a",
                "contrast_embedding_b", "contrast_leakage", "contrast_cka"):
        assert key in shown, key
    # Every probe AUC of a random set is null (no test forget images): the section says why
    # instead of drawing an empty chart.
    assert all(v is None for v in stored.store.load(stored.ids[RANDOM]["unlearned"]).result["audits"]["probes"].values())
    assert "contrast_probes" not in shown
    assert any("No decodability for a random forget set" in i.value for i in at.info)
    assert shown["contrast_accuracy"]["layout"]["meta"]["forget_class"] is None  # no class marked
    assert [m.label for m in at.metric][0] == "Forget images: A − B"
    wording = CLASS_WORDING.findall(shown_text(at) + json.dumps(shown))
    assert not wording, wording


def test_contrast_draws_every_section_for_two_forgotten_classes_and_reads_flat_probes(stored):
    at = open_page(stored, CLASSES, CONTRAST, a="original")
    assert [h.value for h in at.header] == SECTIONS
    shown = charts(at)
    assert {"contrast_accuracy", "contrast_leakage", "contrast_cka", "contrast_probes"} <= set(shown)
    assert shown["contrast_accuracy"]["layout"]["meta"]["forget_class"] == [3, 5]
    assert [m.label for m in at.metric][0] == "Forget classes: A − B"
    aucs = [v for trace in shown["contrast_probes"]["data"] for v in trace["y"] if v is not None]
    flat = any("Why the lines are flat near 1.0" in i.value for i in at.info)
    assert flat == (min(aucs) >= text.FLAT_AUC)  # the note comes exactly when every AUC is high
    assert "red-marked forget classes" in shown_text(at)  # class sets keep their class reading


def _cell_colors(at: AppTest) -> dict[tuple[int, int], str]:
    """(row, column) -> background colour of the Screen table's styled cells."""
    css = at.dataframe[0].proto.arrow_data.styler.styles
    colors = {}
    for selectors, color in re.findall(r"([^{}]+)\{\s*background-color:\s*(#[0-9a-f]{6})", css):
        for row, column in re.findall(r"row(\d+)_col(\d+)", selectors):
            colors[int(row), int(column)] = color
    return colors


def test_screen_colours_and_sorts_a_random_set_by_the_gap_to_the_retrained_model(stored):
    at = open_page(stored, RANDOM, SCREEN)
    view = at.dataframe[0].value
    colors = _cell_colors(at)
    retrained = int(np.flatnonzero(view["Type"] == "Retrained")[0])
    darkest = {group: tables.tint(color, 1.0) for group, (_, color) in catalogue.COLOR_GROUPS.items()}
    ua, mia = view.columns.get_loc("UA"), view.columns.get_loc("MIA")
    # The Retrained model's UA (a model that never saw the forget images still recognises them) is
    # the best value for forgotten images, not the worst.
    assert view.loc[retrained, "UA"] > 0.5 and colors[retrained, ua] == darkest["accuracy"]
    assert colors[retrained, mia] == darkest["privacy"]
    legend = "\n".join(h.proto.body for h in at.get("html"))
    assert "UA, TUA darkest at the Retrained model's value" in legend and "MIA at the Retrained model's value" in legend
    at.selectbox(key="screen_sort").set_value("UA").run()  # best first: the smallest gap to Retrained
    assert at.session_state["mucomp_screen_order"][0] == stored.ids[RANDOM]["retrained"]
    pareto = charts(at)["screen_pareto"]["layout"]
    assert "closer to the Retrained model is better" in pareto["xaxis"]["title"]["text"]
    at.session_state["mucomp_screen_detail"] = stored.ids[RANDOM]["unlearned"]  # Details: the GA run's epochs
    at.run()
    epochs = charts(at)["screen_epochs"]["layout"]
    assert "closer to the Retrained model is better" in epochs["yaxis"]["title"]["text"]
    assert not CLASS_WORDING.findall(shown_text(at))


def test_screen_keeps_the_class_reading_for_a_class_set(stored):
    at = open_page(stored, CLASSES, SCREEN)
    view = at.dataframe[0].value
    retrained = int(np.flatnonzero(view["Type"] == "Retrained")[0])
    assert view.loc[retrained, "UA"] == 0.0  # never saw classes 3 and 5: UA 0 %, the darkest cell
    assert _cell_colors(at)[retrained, view.columns.get_loc("UA")] == tables.tint(catalogue.COLOR_GROUPS["accuracy"][1], 1.0)
    assert "UA, TUA darkest at 0 %" in "\n".join(h.proto.body for h in at.get("html"))


def test_attack_tabs_say_u_lira_belongs_to_the_configuration_and_read_relearning_by_kind(stored):
    at = open_page(stored, RANDOM, ATTACK)
    captions = [c.value for c in at.caption]
    assert any(catalogue.ULIRA_SCOPE in c for c in captions)
    assert any("nothing has to come back" in c for c in captions)
    assert not CLASS_WORDING.findall("\n".join(captions))
    assert not CLASS_WORDING.findall(shown_text(at))  # headers' help too (the instance panel's)
    assert "forget class" in text.instance_help("class:3")
    assert "per method configuration" in catalogue.COLUMN_HELP["U-LiRA"]  # Screen's column help, briefly


def _relearn_block(model: list[float], retrained: list[float], relative: float | None) -> dict:
    steps = list(range(0, 2 * len(model), 2))
    curve = {"steps": steps, "forget_accuracy": model}
    return {"steps": steps[-1], "target": 0.5, "relative": relative, "curves": {
        "model": {"forget": curve, "retain_only": curve},
        "retrained": {"forget": {"steps": steps, "forget_accuracy": retrained}, "retain_only": curve}},
        "steps_to_target": {"model": 0, "retrained": 0, "model_retain_only": 0, "retrained_retain_only": 0}}


def test_relearning_is_read_as_the_gap_to_the_retrained_curve_for_images_and_as_steps_for_classes():
    images = relearn_reading(_relearn_block([0.90, 0.97], [0.95, 0.96], None), RANDOM)
    assert "90% → 97%" in images and "95% → 96%" in images and "+1.0 points" in images
    assert not CLASS_WORDING.findall(images + text.relearn_help(RANDOM) + text.relearn_steps_note(RANDOM))
    classes = relearn_reading(_relearn_block([0.0, 0.6], [0.0, 0.1], 0.5), "class:3")
    assert "relearnt faster" in classes and text.relearn_steps_note("class:3") == ""
    assert text.relearn_help("indices:0123abcd") == text.relearn_help(RANDOM) != text.relearn_help(CLASSES)


def test_the_cli_audit_text_speaks_of_images_for_a_random_set_and_of_the_class_for_a_class_set():
    from mucomp.results.attack import audit_text

    leakage = {"js_mean": 0.01, "mean_rank": 1.5, "retrained_mean_rank": 1.4}
    block = {**_relearn_block([0.90, 0.97], [0.95, 0.96], None), "k": 20, "lr": 0.01}
    images = audit_text("x", {"leakage": leakage, "relearn": block}, RANDOM)
    assert "each forget image's true class" in images and "+1.0 points" in images
    assert not CLASS_WORDING.findall(images), images
    classes = audit_text("x", {"leakage": leakage, "relearn": {**block, "relative": 0.5}}, "class:3")
    assert "the forgotten class 1.50" in classes and "half the Original's forget accuracy" in classes


def test_table_scales_follow_the_forget_set_kind():
    import pandas as pd

    table = pd.DataFrame({"ID": ["o", "r", "x"], "Type": ["Original", "Retrained", "Unlearned"],
                          "Method": ["Original", "Retrained", "GA"], "UA": [1.0, 0.96, 0.5], "MIA": [0.0, 0.1, 0.6]})
    retrained = tables.retrained_values(table)
    assert retrained["UA"] == 0.96 and np.isnan(retrained["RA"])
    assert np.allclose(tables.goodness(table["UA"], "UA", RANDOM, retrained), [0.96, 1.0, 0.54])  # 1 - |gap|
    assert np.allclose(tables.goodness(table["UA"], "UA", "class:3", retrained), [0.0, 0.04, 0.5])  # lower is better
    assert np.isnan(tables.goodness(table["UA"], "UA", RANDOM, {})).all()  # no Retrained row: no colour
    order = tables.filter_and_sort(table, None, "MIA", tables.ascending_for("MIA", RANDOM, True), forget=RANDOM,
                                   retrained=retrained)
    assert list(order["ID"]) == ["r", "o", "x"]  # smallest gap to Retrained's 10 % first
    assert not tables.ascending_for("MIA", "class:3", True)  # higher is better for classes


def test_pareto_colours_a_retrained_column_by_the_gap_for_images():
    import pandas as pd

    from mucomp.ui.figures.screen import pareto_figure

    table = pd.DataFrame({"ID": ["o", "r", "x"], "Method": ["Original", "Retrained", "GA"],
                          "Type": ["Original", "Retrained", "Unlearned"], "UA": [1.0, 0.96, 0.5],
                          "TRA": [0.97, 0.96, 0.9], "MIA": [0.0, 0.1, 0.6]})
    images = pareto_figure(table, [False, False, True], x="UA", y="TRA", color="MIA", forget=RANDOM).data[0]
    assert np.allclose(images.marker.color, [0.1, 0.0, 0.5]) and images.marker.colorscale[0][1] == "#fde725"
    assert "gap to the Retrained model (lower is better)" in images.marker.colorbar.title.text
    assert [row[3] for row in images.customdata] == [0.0, 0.1, 0.6]  # the hover keeps the value
    classes = pareto_figure(table, [False, False, True], x="UA", y="TRA", color="MIA", forget="class:3").data[0]
    assert np.allclose(classes.marker.color, [0.0, 0.1, 0.6])
