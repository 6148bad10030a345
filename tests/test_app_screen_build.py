"""Screen and Build as a first-time user meets them (issue 31): the replicate spread of one group,
Build's Progress panel per scenario, the one grid limit, uncut ID and Method columns, picker labels
that tell same-method runs apart, "this exact run exists", and methods that declare the common
hyper-parameters they use (SSD has no learning rate).

The store holds hand-made results (configs as a run stores them, known metrics): nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mucomp.config import ExperimentConfig
from mucomp.data import Scenario
from mucomp.execution import PrepareReferences
from mucomp.methods import get_method
from mucomp.store import ExperimentStore
from tests.helpers import clear_app_caches, fresh_app_home
from tests.test_adversarial import digits_weights, full_result

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = Scenario("digits", 3, 0)
GA = "Gradient ascent (GA)"


def run_config(method: str, scenario: Scenario = SCENARIO, unlearn_seed: int = 0, **hyper) -> dict:
    """A config as ``run_experiment`` stores it: the config's dict, every hyper-parameter resolved."""
    common = {k: v for k, v in hyper.items() if k in ("epochs", "lr", "batch_size")}
    config = ExperimentConfig.for_scenario(scenario, unlearn_seed=unlearn_seed, method=method, **common,
                                           params={k: v for k, v in hyper.items() if k not in common})
    resolved = get_method(method).resolve_for(scenario, config.hyper())
    stored = {**config.to_dict(), **{k: resolved[k] for k in ("epochs", "lr", "batch_size")}}
    stored["params"] = {k: v for k, v in resolved.items() if k not in ("epochs", "lr", "batch_size")}
    return stored


def save(store: ExperimentStore, config: dict, label: str = GA, ua: float = 0.5, **extra) -> str:
    base = full_result()
    result = {**base, "config": config, "method_label": label, "metrics": {**base["metrics"], "UA": ua}, **extra}
    return store.save(result, digits_weights()).id


def save_references(store: ExperimentStore) -> dict[str, str]:
    ids = {}
    for kind in ("original", "retrained"):
        config = {**SCENARIO.config_fields(), "unlearn_seed": 0, "method": kind, "base": None, "checkpoint": "local"}
        ids[kind] = save(store, config, label=None, id=f"{kind}-digits-c3-s0-abcdef", kind=kind)
    return ids


@pytest.fixture()
def home(tmp_path, monkeypatch):
    yield fresh_app_home(tmp_path, monkeypatch)
    clear_app_caches()


@pytest.fixture()
def store(home) -> ExperimentStore:
    return ExperimentStore(home / "experiments")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.session_state["mucomp_scenario"] = SCENARIO
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


# ---------------------------------------------------------------------------------------------
# Screen


def test_screen_one_replicate_group_keeps_its_seeds_in_a_narrow_band_and_labels_tell_runs_apart(store):
    references = save_references(store)
    ids = {(lr, seed): save(store, run_config("ga", unlearn_seed=seed, lr=lr), ua=0.1 + 0.05 * seed)
           for lr in (0.05, 0.03) for seed in range(3 if lr == 0.05 else 1)}
    at = open_page("pages/2_Screen.py")

    # Defect 7: one replicated group; its seed points stay within a narrow band of the width.
    from mucomp.ui.variance import JITTER, MIN_SLOTS

    spread = charts(at)["screen_spread"]
    assert spread["layout"]["meta"]["groups"] and len(spread["layout"]["meta"]["groups"]) == 1
    low, high = spread["layout"]["xaxis"]["range"]
    points = spread["data"][0]["x"]
    assert len(points) == 3
    assert (max(points) - min(points)) / (high - low) <= 2 * JITTER / MIN_SLOTS
    assert low < min(points) and max(points) < high and abs((low + high) / 2) < 1e-9  # the group in the middle

    # Item 5: the pickers and Details name what differs among the GA runs (lr) and the seeds.
    options = at.selectbox(key="screen_model_b").options
    assert f"{GA} · lr 0.05 · seeds t0 u2 · {ids[(0.05, 2)]}" in options
    assert f"{GA} · lr 0.03 · seeds t0 u0 · {ids[(0.03, 0)]}" in options
    assert any(o.startswith(f"{GA} · lr 0.05 · seeds t0 u2") for o in at.selectbox(key="screen_detail").options)
    assert not any("epochs" in o for o in options)  # the same in every GA run: not repeated
    # The sidebar's Model A / B lines use the same labels once the models are chosen.
    at.selectbox(key="screen_model_a").set_value(ids[(0.03, 0)]).run()
    at.selectbox(key="screen_model_b").set_value(ids[(0.05, 2)]).run()
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert f"lr 0.03 · seeds t0 u0 · {ids[(0.03, 0)]}" in sidebar.replace("\\", "")
    assert f"lr 0.05 · seeds t0 u2 · {ids[(0.05, 2)]}" in sidebar.replace("\\", "")

    # Defect 6: neither the references' long ids nor the method labels are cut off.
    columns = json.loads(at.dataframe[0].proto.columns)
    widths = {c.get("label"): c.get("width") for c in columns.values() if isinstance(c, dict)}
    from mucomp.ui.tables import FITTED_COLUMNS

    per_char = FITTED_COLUMNS["ID"][0]
    assert widths["ID"] >= len(references["retrained"]) * per_char
    assert widths["Method"] >= len(GA) * FITTED_COLUMNS["Method"][0]


def test_picker_labels_name_only_the_settings_that_differ_and_the_seeds():
    from mucomp.ui.labels import experiment_labels

    def entry(identifier, method, label, base="original", seed=0, **hyper):
        config = {"method": method, "base": base, "epochs": 12, "lr": 0.05, "batch_size": 32,
                  "params": {"clip_grad_norm": 0.025}, "train_seed": 0, "unlearn_seed": seed}
        for key, value in hyper.items():
            (config if key in config else config["params"])[key] = value
        return {"id": identifier, "kind": "unlearned", "method_label": label, "config": config}

    listing = [{"id": "original-x", "kind": "original", "config": {}},
               entry("a1", "ga", GA), entry("a2", "ga", GA, clip_grad_norm=0.5, seed=1),
               entry("a3", "ga", GA, base="a1"), entry("f1", "ft", "Fine-tuning (FT)", lr=0.01),
               {"id": "u1", "kind": "custom", "method_label": "My model", "config": {"method": "custom"}}]
    labels = experiment_labels(listing)
    assert labels["original-x"] == "Original" and labels["u1"] == "My model · u1"
    assert labels["a1"] == f"{GA} · clip_grad_norm 0.025, from Original · seeds t0 u0 · a1"
    assert labels["a2"] == f"{GA} · clip_grad_norm 0.5, from Original · seeds t0 u1 · a2"
    assert labels["a3"] == f"{GA} · clip_grad_norm 0.025, from a1 · seeds t0 u0 · a3"
    assert labels["f1"] == "Fine-tuning (FT) · seeds t0 u0 · f1"  # the only FT run: nothing to tell apart


def test_the_spread_jitter_is_bounded_whatever_the_number_of_groups():
    from mucomp.ui.variance import JITTER, MIN_SLOTS, spread_figure

    for groups in (1, 2, 8):
        summaries = [{"group": f"g-{k:010d}", "method": "ga", "method_label": GA,
                      "metrics": {"UA": {"mean": 0.5, "half_width": 0.1, "n": 4}}} for k in range(groups)]
        members = {s["group"]: [{"metrics": {"UA": 0.4 + 0.05 * i}} for i in range(4)] for s in summaries}
        fig = spread_figure(summaries, "UA", members)
        low, high = fig.layout.xaxis.range
        assert high - low >= max(groups, MIN_SLOTS)
        for position, trace in enumerate(fig.data[::2]):
            assert all(abs(x - position) <= JITTER for x in trace.x)


# ---------------------------------------------------------------------------------------------
# Build


def _job(job_id: int, request, state: str, owner: str) -> dict:
    return {"id": job_id, "config": request, "owner": owner, "env": {}, "state": state, "stage": "", "fraction": 0.0,
            "figures": {}, "message": "", "experiment_id": f"e{job_id:07d}" if state == "completed" else None,
            "result": {}, "submitted_at": 0.0, "started_at": None, "finished_at": None, "cancel_requested": False,
            "worker": None}


def test_build_progress_lists_this_scenarios_runs_and_counts_the_others(store, monkeypatch):
    from mucomp.ui import session

    save_references(store)
    other = Scenario("digits", 5, 0)

    def jobs() -> list[dict]:
        me = st.session_state[session.KEY_OWNER]
        return [_job(1, ExperimentConfig.for_scenario(SCENARIO, method="ga"), "completed", me),
                _job(2, ExperimentConfig.for_scenario(other, method="ft"), "completed", me),
                _job(3, ExperimentConfig.for_scenario(other, method="ga", unlearn_seed=1), "queued", me),
                _job(4, ExperimentConfig.for_scenario(other, method="rl"), "running", "someone-else"),
                _job(5, PrepareReferences(other), "completed", me)]

    monkeypatch.setattr(session, "home_jobs", jobs)
    at = open_page("pages/1_Build.py")
    done = [s.value for s in at.success if "done" in s.value]
    assert len(done) == 1 and "e0000001" in done[0] and GA in done[0]
    assert not any(b.key == "cancel-3" for b in at.button)  # another scenario's queued run
    assert not [p for p in at.get("progress")]  # another scenario's running run
    assert any("3 runs of other scenarios are not listed here (2 queued or running, 1 finished)" in c.value
               for c in at.caption)


def test_build_says_this_exact_run_exists_and_opens_it_as_model_b(store):
    references = save_references(store)
    # The form's defaults for GA on digits, unlearning seed 0, from the Original: stored before.
    twin = save(store, run_config("ga"))
    save(store, run_config("ga", lr=0.03))  # another config: not the twin
    at = open_page("pages/1_Build.py")
    notices = [i.value for i in at.info if "This exact run exists" in i.value]
    assert len(notices) == 1 and twin in notices[0]
    assert not at.button(key="build_run").disabled  # running it again stays possible (counted once)
    at.text_input(key="build_seeds").set_value("0-1").run()
    assert any("1 of these 2 runs exists already" in i.value for i in at.info)
    at.text_input(key="build_seeds").set_value("0").run()
    at.button(key="build_contrast_stored").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["mucomp_model_b"] == twin
    assert at.session_state["mucomp_model_a"] == references["original"]


def test_ssd_has_no_learning_rate_field_and_refuses_one_in_a_grid(store, capsys):
    save_references(store)
    at = open_page("pages/1_Build.py")
    at.selectbox(key="form_method").set_value("ssd").run()
    keys = {t.key for t in at.text_input}
    assert {"form_ssd.epochs", "form_ssd.batch_size"} <= keys and "form_ssd.lr" not in keys
    assert any("does not use the learning rate" in c.value for c in at.caption)
    assert not at.button(key="build_run").disabled and not at.error

    from mucomp.cli import main
    from mucomp.ui import forms

    info = get_method("ssd")
    assert info.uses == ("epochs", "batch_size") and [p.name for p in info.common_params] == ["epochs", "batch_size"]
    with pytest.raises(forms.GridError, match="does not use lr"):
        forms.grid_configs(info, SCENARIO, "original", {"epochs": [1], "lr": [0.1, 0.2], "batch_size": [64]})
    assert main(["run", "--forget-class", "3", "--method", "ssd", "--grid", "lr=0.1,0.2"]) == 2
    assert "does not use lr" in capsys.readouterr().err
    assert get_method("ga").uses == ("epochs", "lr", "batch_size")


def test_the_grid_limit_is_one_statement_in_the_caption_the_refusal_and_the_readme(store):
    from mucomp.ui import forms

    save_references(store)
    statement = forms.grid_limit_text()
    assert f"at most {forms.MAX_GRID_RUNS} runs" in statement
    with pytest.raises(forms.GridError) as refused:
        forms.grid_configs(get_method("ga"), SCENARIO, "original",
                           {"epochs": [1, 2, 3, 4, 5], "lr": [0.01, 0.02, 0.03, 0.04, 0.05], "batch_size": [32]})
    assert str(refused.value) == f"This grid makes 25 runs. {statement}: narrow the grid or use fewer seeds."
    at = open_page("pages/1_Build.py")
    assert any(c.value.startswith(statement) for c in at.caption)
    at.text_input(key="form_ga.lr").set_value("0.01, 0.02, 0.03, 0.04, 0.05").run()
    at.text_input(key="build_seeds").set_value("0-4").run()
    assert any(statement in e.value for e in at.error) and at.button(key="build_run").disabled
    readme = (ROOT / "README.md").read_text()
    assert f"queues at most {forms.MAX_GRID_RUNS} runs (grid points × unlearning seeds)" in readme


def test_the_stored_config_of_a_run_matches_what_a_run_stores():
    for method, hyper in (("ga", {}), ("ssd", {"batch_size": 32}), ("scrub", {"lr": 0.01})):
        info = get_method(method)
        common = {k: v for k, v in hyper.items() if k in ("epochs", "lr", "batch_size")}
        config = ExperimentConfig.for_scenario(SCENARIO, method=method, **common)
        assert info.stored_config(config) == run_config(method, **hyper)
