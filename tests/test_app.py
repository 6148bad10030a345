"""The Streamlit app through AppTest: every page, the complete first pass on digits (forget class
3: references -> GA through the background worker -> Screen -> Contrast -> Attack), bad inputs,
uploads, two sessions at once.

The app's process-wide resources (store, job queue) are keyed by ``MUCOMP_HOME``; this module
uses a private home (and each empty-store test its own), so nothing here sees other tests' files.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from mucomp import privacy
from mucomp.compare import instance_probabilities
from mucomp.data import Scenario
from mucomp.models import build_model
from tests.helpers import seed_reference_cache

ROOT = Path(__file__).resolve().parents[1]
HOME, BUILD, SCREEN, CONTRAST, ATTACK = (
    "Home.py", "pages/1_Build.py", "pages/2_Screen.py", "pages/3_Contrast.py", "pages/4_Attack.py")
WAIT_S = 600


def new_app() -> AppTest:
    at = AppTest.from_file(str(ROOT / HOME), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def charts(at: AppTest) -> dict[str, dict]:
    """The plotly charts on the page by key, as figure JSON."""
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def metric_values(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def run_until(at: AppTest, done, what: str, timeout: float = WAIT_S, seen: list | None = None) -> None:
    """Rerun the page (fragment timers don't fire in AppTest) until ``done(at)``."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if seen is not None:
            seen.extend(p.proto.text for p in at.get("progress"))
        if done(at):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; errors: {texts(at.error)}")
        time.sleep(0.5)


def stored_ids(home: Path) -> set[str]:
    return {p.name for p in (home / "experiments").iterdir() if not p.name.startswith(".")}


def clear_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture()
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"


@pytest.fixture(scope="module")
def app_home(tmp_path_factory, digits_scenario, digits_references):
    """A private MUCOMP_HOME for the module; torch's thread count restored afterwards. Its
    reference cache holds the session's Original (trained before on this machine), so preparing
    the references trains the Retrained model only, with its epochs shown."""
    home = tmp_path_factory.mktemp("app-home")
    seed_reference_cache(home, digits_scenario, ("original",))
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    threads = torch.get_num_threads()
    clear_caches()
    yield home
    from mucomp.ui import session

    session.get_queue().wait(timeout=120)
    patch.undo()
    torch.set_num_threads(threads)
    clear_caches()


@pytest.fixture(scope="module")
def flow(app_home):
    """The first pass a new user makes, driven through the UI: pick class 3, prepare the
    references, run GA with the defaults, pick Original as A and the new run as B."""
    at = new_app()
    at.selectbox(key="home_forget").set_value(3).run()
    assert at.session_state["mucomp_scenario"] == Scenario("digits", 3, 0)
    at.button(key="home_prepare").click().run()
    reference_progress: list[str] = []
    run_until(at, lambda a: any("are ready" in t for t in texts(a.success)), "the reference models",
              seen=reference_progress)
    goto(at, BUILD)
    at.button(key="build_run").click().run()
    run_progress: list[str] = []
    run_until(at, lambda a: any("stored as" in t for t in texts(a.success)), "the GA run", seen=run_progress)
    done_lines = [t for t in texts(at.success) if "stored as" in t]
    caption = done_lines[0]
    experiment_id = re.search(r"stored as `([a-z0-9-]+)`", caption).group(1)
    from mucomp.ui import session

    store = session._store(str(app_home.resolve()))
    results = {e.kind: e.result for e in store.list()}
    goto(at, SCREEN)
    at.selectbox(key="screen_model_a").set_value(results["original"]["id"]).run()
    at.selectbox(key="screen_model_b").set_value(experiment_id).run()
    assert not at.exception
    return SimpleNamespace(at=at, home=app_home, store=store, experiment=experiment_id,
                           original=results["original"], retrained=results["retrained"],
                           result=store.load(experiment_id).result, reference_progress=reference_progress,
                           done_lines=done_lines,
                           run_progress=run_progress)


# ---------------------------------------------------------------------------------------------
# An empty store: every page renders and says what to do first


def test_every_page_renders_with_an_empty_store_and_says_what_to_do(empty_home):
    at = new_app()
    assert any("not ready" in t for t in texts(at.warning))
    assert at.button(key="home_prepare").label == "Prepare reference models"
    assert any("Prepare the reference models" in t for t in texts(at.markdown))  # the guide's first step
    goto(at, BUILD)
    assert any("not ready" in t for t in texts(at.warning))
    assert at.button(key="build_run").disabled
    for page in (SCREEN, CONTRAST, ATTACK):
        goto(at, page)
        assert any("Start on Home: prepare the reference models" in t for t in texts(at.info)), page
    assert not (empty_home / "experiments").exists() or not stored_ids(empty_home)


def test_screen_marks_a_reference_whose_hub_file_did_not_reproduce_its_accuracy(empty_home, monkeypatch):
    from mucomp.store import ExperimentStore
    from mucomp.ui import session

    monkeypatch.setattr(session, "get_queue", lambda: SimpleNamespace(jobs=list))  # no worker processes
    check = {"file": "net_original.pth", "tolerance": 0.01, "matches": False,
             "figures": [{"name": "card test accuracy", "published": 0.954, "measured": 0.1, "difference": -0.854}],
             "message": "net_original.pth does not reproduce what its publishers measured: card test accuracy "
                        "0.100 here, 0.954 in its model card."}
    store = ExperimentStore(empty_home / "experiments")
    for kind, extra in (("original", {"reference_check": check}), ("retrained", {})):
        store.save({"id": f"{kind}-x", "kind": kind, "config": {"dataset": "digits", "forget_class": 3, "seed": 0,
                    "method": kind, "base": None}, "metrics": {"UA": 0.0, "RA": 1.0, "TUA": 0.0, "TRA": 0.9}, **extra})
    # The light listing (what the Screen reads) keeps the check.
    light = {r["id"]: r for r in store.light_results(dataset="digits", forget_class=3, train_seed=0)}
    assert light["original-x"]["reference_check"] == check and "reference_check" not in light["retrained-x"]
    at = new_app()
    at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
    at.session_state["mucomp_screen_detail"] = "original-x"
    goto(at, SCREEN)
    warnings = texts(at.warning)
    assert any(w.startswith("The Hub file of the Original does not reproduce") for w in warnings)
    assert any("card test accuracy 0.100 here, 0.954 in its model card" in w for w in warnings)  # Details
    assert at.dataframe[0].value["Type"].tolist() == ["⚠ Original", "Retrained"]


# ---------------------------------------------------------------------------------------------
# The first pass


def test_home_showed_progress_while_the_references_were_prepared(flow):
    # The finished preparation job keeps what it reported (a lasting state, not the passing text).
    from mucomp.execution import PrepareReferences
    from mucomp.ui import session

    [job] = [j for j in session.get_queue().jobs() if isinstance(j["config"], PrepareReferences)
             and j["config"].scenario == Scenario("digits", 3, 0) and j["state"] == "completed"]
    assert job["stage"] == "references" and job["figures"]["reference"] == "retrained"
    assert job["figures"]["epoch"] == job["figures"]["epochs"] > 1
    assert flow.original["config"]["forget_class"] == 3 and flow.retrained["kind"] == "retrained"


def test_build_showed_live_progress_of_the_background_run(flow):
    # Lasting states only: the finished job kept its last epoch and forget accuracy, and its
    # "done" line (which stays) shows them with the stored figures; a short GA run may finish its
    # epochs between two page refreshes, so the transient progress text is not waited for.
    from mucomp.ui import session

    job = next(j for j in session.get_queue().jobs() if j["experiment_id"] == flow.experiment)
    metrics = flow.result["metrics"]
    assert job["state"] == "completed" and job["figures"]["epoch"] == job["figures"]["epochs"] == 12
    assert job["figures"]["forget_accuracy"] == pytest.approx(flow.result["epochs"][-1]["forget_accuracy"])
    assert job["result"]["UA"] == metrics["UA"] and job["result"]["PS"] == metrics["PS"]
    assert job["worker"].startswith("pid ") and job["worker"] != f"pid {os.getpid()}"  # not the server process
    done = next(t for t in flow.done_lines if flow.experiment in t)
    assert "12/12 epochs" in done and f"UA {metrics['UA']:.1%}" in done and f"TRA {metrics['TRA']:.1%}" in done
    assert f"PS {metrics['PS']:.2f}" in done
    assert flow.result["config"]["method"] == "ga" and flow.result["owner"] == flow.at.session_state["mucomp_owner"]


def test_build_lists_every_built_in_method_and_runs_a_new_one(flow):
    from mucomp.methods import BUILTIN_METHODS, get_method

    at = goto(flow.at, BUILD)
    assert {get_method(name).label for name in BUILTIN_METHODS} <= set(at.selectbox(key="form_method").options)
    before = stored_ids(flow.home)
    at.selectbox(key="form_method").set_value("ssd").run()
    at.button(key="build_run").click().run()
    run_until(at, lambda a: len(stored_ids(flow.home) - before) == 1, "the SSD run")
    [new_id] = stored_ids(flow.home) - before
    stored = flow.store.load(new_id).result
    assert stored["config"]["method"] == "ssd" and stored["metrics"]["UA"] <= 0.1
    # Leave the module's store and form as the other tests expect them (they count the rows).
    flow.store.delete(new_id)
    at.selectbox(key="form_method").set_value("ga").run()


def test_screen_lists_the_experiments_and_keeps_model_a_and_b(flow):
    at = goto(flow.at, SCREEN)
    table = at.dataframe[0].value
    assert list(table["ID"]) == [flow.original["id"], flow.retrained["id"], flow.experiment]
    assert {"UA", "RA", "TUA", "TRA", "RT", "PS", "MIA", "Avg. Gap"} <= set(table.columns)
    assert at.session_state["mucomp_model_a"] == flow.original["id"]
    assert at.session_state["mucomp_model_b"] == flow.experiment
    assert "screen_epochs" in charts(at)  # details default to Model B
    config, figures_shown = (t.value for t in at.table)  # Details: key/value tables, not raw JSON
    assert config.loc["Method", "Value"] == flow.result["config"]["method"]
    assert figures_shown.loc["PS (51-point grid)", "Value"] == f"{flow.result['metrics']['PS']:.3f}".replace(".", "\\.")
    assert "PS_exact (every value as threshold)" in figures_shown.index
    help_texts = {c.get("label"): c.get("help") for c in json.loads(at.dataframe[0].proto.columns).values()
                  if isinstance(c, dict)}
    from mucomp.catalogue import DEFINITIONS_POINTER

    assert all(text.endswith(DEFINITIONS_POINTER) for text in help_texts.values() if text)
    # Picking a model makes it the one Details show.
    at.selectbox(key="screen_model_a").set_value(flow.retrained["id"]).run()
    assert at.selectbox(key="screen_detail").value == flow.retrained["id"]
    at.selectbox(key="screen_model_a").set_value(flow.original["id"]).run()
    front = charts(at)["screen_pareto"]["data"][1]  # ringed: the best trade-offs among the experiments
    assert [row[0] for row in front["customdata"]] == [flow.experiment]
    # The selection survives a page change (widget keys vanish; the app's own keys don't).
    goto(at, HOME)
    goto(at, SCREEN)
    assert at.selectbox(key="screen_model_b").value == flow.experiment


def test_the_url_keeps_scenario_and_models_so_a_reload_or_a_shared_link_restores_them(flow):
    at = goto(flow.at, SCREEN)
    query = {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}
    assert query == {"dataset": "digits", "forget": "3", "seed": "0", "a": flow.original["id"], "b": flow.experiment}
    # A reload (or the link opened elsewhere) starts a new session from the URL.
    reloaded = AppTest.from_file(str(ROOT / HOME), default_timeout=60)
    for key, value in query.items():
        reloaded.query_params[key] = value
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["mucomp_scenario"] == Scenario("digits", 3, 0)
    assert (reloaded.session_state["mucomp_model_a"], reloaded.session_state["mucomp_model_b"]) == (
        flow.original["id"], flow.experiment)
    goto(reloaded, CONTRAST)
    assert "contrast_accuracy" in charts(reloaded)
    # An untrusted query is checked: nonsense falls back to the defaults, unknown ids are dropped.
    bad = AppTest.from_file(str(ROOT / HOME), default_timeout=60)
    for key, value in {"dataset": "imagenet", "forget": "99", "seed": "-1", "a": "../etc", "b": "zzz-unknown"}.items():
        bad.query_params[key] = value
    bad.run()
    assert not bad.exception and bad.session_state["mucomp_scenario"] == Scenario("digits", 3, 0)  # the default
    assert bad.session_state["mucomp_model_a"] is None


def test_screen_filters_and_sorts(flow):
    at = goto(flow.at, SCREEN)
    at.multiselect(key="screen_methods").set_value(["Gradient ascent (GA)"]).run()
    assert list(at.dataframe[0].value["ID"]) == [flow.experiment]
    at.multiselect(key="screen_methods").set_value([]).run()
    at.selectbox(key="screen_sort").set_value("UA").run()  # best (lowest) first
    ids = list(at.dataframe[0].value["ID"])
    assert ids[0] == flow.retrained["id"] and ids[-1] == flow.original["id"]
    at.selectbox(key="screen_sort").set_value("Created").run()


def test_contrast_renders_the_four_views(flow):
    at = goto(flow.at, CONTRAST)
    shown = charts(at)
    for key in ("contrast_accuracy", "contrast_matrix_a", "contrast_matrix_b", "contrast_embedding_a",
                "contrast_embedding_b", "contrast_cka"):
        assert key in shown, key
    accuracy = shown["contrast_accuracy"]["data"]  # A − B per class first (diverging bars)
    drawn = [up if up is not None else down for up, down in zip(accuracy[0]["y"], accuracy[1]["y"], strict=True)]
    assert np.allclose(drawn, np.subtract(flow.original["metrics"]["accs"], flow.result["metrics"]["accs"]))
    at.segmented_control(key="contrast_acc_view").set_value("grouped").run()
    accuracy = charts(at)["contrast_accuracy"]["data"]
    assert np.allclose(accuracy[0]["y"], flow.original["metrics"]["accs"])
    assert np.allclose(accuracy[1]["y"], flow.result["metrics"]["accs"])
    at.segmented_control(key="contrast_acc_view").set_value("difference").run()
    matrix = shown["contrast_matrix_b"]["data"][0]["z"]
    assert np.allclose(matrix, flow.result["metrics"]["label_dist"])
    layers = flow.result["cka"]["layers"]
    assert shown["contrast_cka"]["layout"]["xaxis"]["categoryarray"] == layers
    # Class leakage (A, B, Retrained bars) and the probes (A, B, Retrained lines), from the stored audits.
    leakage = shown["contrast_leakage"]["data"]
    assert np.allclose(leakage[1]["y"], flow.result["audits"]["leakage"]["mean_probability"])
    assert np.allclose(leakage[2]["y"], flow.result["audits"]["leakage"]["retrained_mean_probability"])
    probes = shown["contrast_probes"]["data"]
    assert [trace["name"] for trace in probes][2] == "Retrained"
    assert np.allclose(probes[1]["y"], [flow.result["audits"]["probes"][layer] for layer in layers])


def test_contrast_selection_in_one_map_highlights_the_image_in_the_other(flow):
    at = goto(flow.at, CONTRAST)
    index = int(flow.result["attack"]["indices"][0])  # a forget image, embedded by both models
    at.session_state["contrast_embedding_a"] = {"selection": {"points": [{"customdata": [index, "3"]}],
                                                              "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception
    assert at.session_state["mucomp_contrast_selection"] == [index]
    selected = [t for t in charts(at)["contrast_embedding_b"]["data"] if t.get("name") == "Selected"]
    assert selected and selected[0]["customdata"][0][0] == index
    assert "contrast_probabilities" in charts(at) and len(at.image) == 1
    # The same image shows the same probabilities (T = 1) here and on Attack.
    bars = charts(at)["contrast_probabilities"]["data"]
    probs_a, probs_b = instance_probabilities(flow.original, flow.result, index)
    assert np.allclose(bars[0]["y"], probs_a, atol=1e-5) and np.allclose(bars[1]["y"], probs_b, atol=1e-5)
    at.button(key="contrast_clear").click().run()
    assert at.session_state["mucomp_contrast_selection"] == []


def _values(result: dict, metric: str) -> np.ndarray:
    return np.asarray(result["attack"][metric], dtype=float)


def test_attack_privacy_score_equals_the_core_on_the_same_data(flow):
    at = goto(flow.at, ATTACK)
    r = flow.retrained
    expected = [1 - privacy.max_attack_score(_values(m, "entropy"), _values(r, "entropy"), "entropy", 51).attack_score
                for m in (flow.original, flow.result)]
    assert metric_values(at, "Privacy score at this threshold") == [f"{v:.3f}" for v in expected]
    at.selectbox(key="attack_strategy").set_value("worst_case").run()
    worst = [privacy.worst_case({k: _values(m, k) for k in privacy.METRICS},
                                {k: _values(r, k) for k in privacy.METRICS}, 51).privacy_score
             for m in (flow.original, flow.result)]
    assert metric_values(at, "Privacy score at this threshold") == [f"{v:.3f}" for v in worst]
    assert [f"{v:.3f}" for v in worst] == [f"{m['metrics']['PS']:.3f}" for m in (flow.original, flow.result)]
    shown = charts(at)
    for key in ("attack_distribution_a", "attack_curves_a", "attack_distribution_b", "attack_curves_b"):
        assert key in shown, key


def test_attack_threshold_slider_switches_to_a_custom_threshold(flow):
    at = goto(flow.at, ATTACK)
    at.selectbox(key="attack_strategy").set_value("max_attack_score").run()  # worst case locks the feature
    at.segmented_control(key="attack_metric").set_value("entropy").run()
    score_a = metric_values(at, "Privacy score at this threshold")[0]
    at.slider(key="attack_threshold_b").set_value(1.0).run()
    assert at.session_state["mucomp_attack"]["strategy"] == "custom"
    assert metric_values(at, "Privacy score at this threshold")[0] == score_a  # moving B's slider leaves A where it was
    choice = privacy.custom_threshold(_values(flow.result, "entropy"), _values(flow.retrained, "entropy"), "entropy", 1.0)
    assert metric_values(at, "Privacy score at this threshold")[1] == f"{choice.privacy_score:.3f}"
    # The thresholds survive a page change.
    goto(at, SCREEN)
    goto(at, ATTACK)
    assert at.slider(key="attack_threshold_b").value == pytest.approx(1.0)
    at.selectbox(key="attack_strategy").set_value("max_attack_score").run()


def test_attack_clicking_an_image_shows_both_models_probabilities(flow):
    at = goto(flow.at, ATTACK)
    grid = charts(at)["attack_grid_success_a"]
    index = int(grid["data"][1]["customdata"][0][0])
    at.session_state["attack_grid_success_a"] = {"selection": {"points": [{"customdata": [index]}],
                                                               "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception and at.session_state["mucomp_instance"] == index
    bars = charts(at)["attack_probabilities"]["data"]
    probs_a, probs_b = instance_probabilities(flow.original, flow.result, index)
    assert np.allclose(bars[0]["y"], probs_a) and np.allclose(bars[1]["y"], probs_b)
    assert len(at.image) == 1
    captions = texts(at.caption)
    assert any("Values as computed, not clipped" in t for t in captions)  # the panel's value vs the histogram
    assert any("worst case on the 51-point grid (the table's PS)" in t for t in captions)


# ---------------------------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize("typed", ["0", "abc", "-1"])
def test_build_refuses_a_bad_learning_rate_at_the_widget(flow, typed):
    at = goto(flow.at, BUILD)
    field = at.text_input(key="form_ga.lr")
    field.set_value(typed).run()
    assert any("Learning rate" in t and "refused" in t for t in texts(at.error))
    assert at.button(key="build_run").disabled
    at.text_input(key="form_ga.lr").set_value("0.05").run()
    assert not at.error and not at.button(key="build_run").disabled


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="build_upload").set_value((name, data, "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class _NotWeights:
    pass


@pytest.mark.parametrize(("name", "data", "message"), [
    ("random.pth", os.urandom(2048), "not a readable PyTorch weights file"),
    ("object.pth", _torch_bytes({"model": _NotWeights()}), "Python objects other than tensors"),
    ("plain.pkl.pth", pickle.dumps({"a": 1}), "not a readable PyTorch weights file"),
    ("notes.pth", _torch_bytes({"epoch": 3, "note": "hello"}), "is not a state dict"),
    ("linear.pth", _torch_bytes(torch.nn.Linear(3, 2).state_dict()), "missing keys: block1.0.bias"),
])
def test_a_bad_upload_is_refused_clearly_and_stores_nothing(flow, name, data, message):
    before = stored_ids(flow.home)
    at = _upload(goto(flow.at, BUILD), name, data)
    errors = texts(at.error)
    assert any(message in e and "Nothing was stored" in e for e in errors), errors
    assert not any(b.key == "build_upload_run" for b in at.button)
    assert stored_ids(flow.home) == before
    at.file_uploader(key="build_upload").set_value(None).run()


def test_a_wrong_architecture_names_the_unexpected_keys(flow):
    at = _upload(goto(flow.at, BUILD), "linear.pth", _torch_bytes(torch.nn.Linear(3, 2).state_dict()))
    error = next(e for e in texts(at.error) if "digits_cnn" in e)
    assert "unexpected keys: bias, weight" in error
    at.file_uploader(key="build_upload").set_value(None).run()


def test_a_good_upload_becomes_a_custom_experiment(flow):
    torch.manual_seed(1)
    data = _torch_bytes(build_model("digits_cnn", 10).state_dict())
    at = _upload(goto(flow.at, BUILD), "mine.pth", data)
    assert any("fits `digits_cnn`" in t for t in texts(at.success))
    at.text_input(key="build_upload_label").set_value("Random CNN").run()
    at.button(key="build_upload_run").click().run()
    run_until(at, lambda a: any("Uploaded model 'Random CNN'" in t and "stored as" in t for t in texts(a.success)),
              "the upload's evaluation")
    at.file_uploader(key="build_upload").set_value(None).run()
    custom = [e for e in flow.store.list() if e.kind == "custom"]
    assert len(custom) == 1 and custom[0].result["method_label"] == "Random CNN"
    assert custom[0].metrics["RT"] is None


# ---------------------------------------------------------------------------------------------
# Two sessions at once; ownership


def test_two_sessions_keep_their_own_models_and_browse_during_a_run(flow):
    first = flow.at
    second = new_app()
    second.selectbox(key="home_forget").set_value(3).run()
    goto(second, SCREEN)
    second.selectbox(key="screen_model_a").set_value(flow.retrained["id"]).run()
    second.selectbox(key="screen_model_b").set_value(flow.original["id"]).run()
    assert (first.session_state["mucomp_model_a"], first.session_state["mucomp_model_b"]) == (
        flow.original["id"], flow.experiment)
    assert (second.session_state["mucomp_model_a"], second.session_state["mucomp_model_b"]) == (
        flow.retrained["id"], flow.original["id"])
    assert first.session_state["mucomp_owner"] != second.session_state["mucomp_owner"]

    # A long run in the first session (fine-tuning, which never diverges); the second browses meanwhile.
    goto(first, BUILD)
    first.selectbox(key="form_method").set_value("ft").run()
    first.text_input(key="form_ft.epochs").set_value("300").run()
    before = stored_ids(flow.home)
    first.button(key="build_run").click().run()
    from mucomp.ui import session

    queue = session.get_queue()
    assert queue.busy()
    for page in (SCREEN, CONTRAST, ATTACK, BUILD):
        start = time.monotonic()
        goto(second, page)
        assert time.monotonic() - start < 30, page
    assert queue.busy(), "the run should still be going while the other session browses"
    assert not any(b.key and b.key.startswith("cancel-") for b in second.button)  # not its run to cancel
    assert second.session_state["mucomp_model_a"] == flow.retrained["id"]

    # The first session cancels its run: nothing is stored.
    goto(first, BUILD)
    cancel = next(b for b in first.button if b.key and b.key.startswith("cancel-"))
    cancel.click().run()
    run_until(first, lambda a: any("cancelled" in t for t in texts(a.warning)), "the cancellation", timeout=120)
    assert stored_ids(flow.home) == before
    first.selectbox(key="form_method").set_value("ga").run()


def test_only_the_owner_can_delete_and_references_never(flow):
    custom_id = next(e.id for e in flow.store.list() if e.kind == "custom")
    other = new_app()
    other.selectbox(key="home_forget").set_value(3).run()
    goto(other, SCREEN)
    other.selectbox(key="screen_detail").set_value(custom_id).run()
    assert other.button(key="screen_delete").disabled
    other.selectbox(key="screen_detail").set_value(flow.retrained["id"]).run()
    assert other.button(key="screen_delete").disabled
    at = goto(flow.at, SCREEN)
    at.selectbox(key="screen_detail").set_value(flow.original["id"]).run()
    assert at.button(key="screen_delete").disabled
    at.selectbox(key="screen_detail").set_value(custom_id).run()
    at.button(key="screen_delete").click().run()
    assert any("can't be undone" in t for t in texts(at.warning))  # asks first; nothing deleted yet
    assert custom_id in stored_ids(flow.home)
    at.button(key="screen_delete_keep").click().run()
    assert custom_id in stored_ids(flow.home) and not any("can't be undone" in t for t in texts(at.warning))
    at.button(key="screen_delete").click().run()
    at.button(key="screen_delete_confirm").click().run()
    assert not at.exception
    assert any(f"Deleted experiment {custom_id}" in t for t in texts(at.success))
    assert custom_id not in stored_ids(flow.home)
    assert custom_id not in list(at.dataframe[0].value["ID"])


def test_attacking_the_retrained_model_itself_gives_a_privacy_score_of_one(flow):
    at = new_app()
    at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
    at.session_state["mucomp_model_a"] = flow.retrained["id"]
    at.session_state["mucomp_model_b"] = flow.experiment
    goto(at, ATTACK)
    assert metric_values(at, "Privacy score at this threshold")[0] == "1.000"
    for strategy in ("max_success_rate", "common", "worst_case", "custom"):
        at.selectbox(key="attack_strategy").set_value(strategy).run()
        assert not at.exception, strategy
        assert metric_values(at, "Privacy score at this threshold")[0] == "1.000", strategy


def test_a_result_without_figure_blocks_shows_advice_not_a_traceback(flow):
    # e.g. an imported result of an older version: metrics only, no attack / embedding / CKA blocks
    bare = {k: v for k, v in flow.result.items() if k not in ("attack", "embedding", "cka", "id", "created_at")}
    bare_id = flow.store.save(bare).id
    try:
        at = new_app()
        at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
        at.session_state["mucomp_model_a"] = flow.original["id"]
        at.session_state["mucomp_model_b"] = bare_id
        for page in (CONTRAST, ATTACK):
            goto(at, page)
            assert not at.exception, page
            assert texts(at.warning), page
        assert "contrast_accuracy" in charts(goto(at, CONTRAST))  # views that have their data still render
    finally:
        flow.store.delete(bare_id)


def test_a_scenario_that_cannot_be_prepared_offline_says_why(flow):
    at = new_app()
    at.selectbox(key="home_forget").set_value(3).run()
    at.session_state["mucomp_model_a"] = flow.original["id"]
    at.run()
    at.selectbox(key="home_dataset").set_value("cifar10").run()
    assert at.session_state["mucomp_model_a"] is None  # Model A belonged to the old scenario
    assert at.session_state["mucomp_scenario"] == Scenario("cifar10", 3, 0)
    at.button(key="home_prepare").click().run()
    run_until(at, lambda a: any("Preparing the reference models failed" in t for t in texts(a.error)),
              "the failed preparation", timeout=120)
    message = next(t for t in texts(at.error) if "failed" in t)
    assert "cifar" in message.lower() and ("network" in message or "download" in message)
    assert at.button(key="home_prepare").label == "Prepare reference models"  # one can try again
