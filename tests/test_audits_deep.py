"""On-demand audits: U-LiRA and the relearning attack (definitions on hand-made inputs, a tiny
digits case), the audit job storing its results, and the Attack page's audit tabs.

The digits cases train their own references with a 3-epoch recipe in a private MUCOMP_HOME (a
fraction of a second per model), so K + M shadow pairs cost seconds; UMAP and the layer probes
are left out of the stored results the page reads (neither is what is tested here).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mucomp.audits import relearn as rl
from mucomp.audits import ulira as ul

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# U-LiRA definitions


def test_phi_is_the_stable_true_class_log_odds_from_logits_or_probabilities():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1000.0, -1000.0, 0.0]])
    labels = np.array([0, 1, 0])
    p = np.exp(logits[:2] - logits[:2].max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = np.log(p[[0, 1], [0, 1]]) - np.log(1 - p[[0, 1], [0, 1]])
    values = ul.phi(logits, labels)
    assert np.allclose(values[:2], expected) and values[1] == pytest.approx(-np.log(2))
    assert values[2] == pytest.approx(1000.0) and np.isfinite(values).all()  # 1 - p_y underflows; z_y - lse does not
    assert np.allclose(ul.phi(p, labels[:2]), expected)  # probabilities (rows sum to 1) are read as such
    assert np.allclose(ul.phi(np.log(p), labels[:2], kind="logits"), expected)  # log-probabilities are logits
    with pytest.raises(ValueError, match="labels must lie"):
        ul.phi(logits, np.array([0, 1, 3]))


def test_gaussian_fit_uses_ddof_0_and_floors_the_deviation():
    shadows = np.array([[1.0, 5.0], [3.0, 5.0]])
    mu, sd = ul.gaussian_fit(shadows, center="mean")
    assert mu.tolist() == [2.0, 5.0] and sd.tolist() == [1.0, ul.MIN_STD]  # std([1, 3], ddof=0) = 1
    three = np.array([[0.0, 1.0], [1.0, 1.0], [8.0, 1.0]])
    assert ul.gaussian_fit(three)[0].tolist() == [1.0, 1.0]  # LiRA's median, not the mean 3
    spread = ul.gaussian_fit(three, variance="global")[1]
    assert spread.tolist() == [pytest.approx(np.std(three))] * 2  # one std over every value


def test_likelihood_ratio_on_hand_made_shadows():
    unlearned = np.array([[0.0, 10.0], [2.0, 10.0]])  # mu_u = (1, 10), sd_u = (1, 1e-3)
    retrained = np.array([[-2.0, -5.0], [-4.0, -3.0]])  # mu_r = (-3, -4), sd_r = (1, 1)
    target = np.array([1.0, -4.0])
    lr = ul.likelihood_ratio(target, unlearned, retrained, center="mean", variance="per_image")
    # image 0: log N(1; 1, 1) - log N(1; -3, 1) = 0 - (-(4 ** 2) / 2) = 8
    assert lr[0] == pytest.approx(8.0)
    # image 1: log N(-4; 10, 1e-3) - log N(-4; -4, 1) = -log(1e-3) - 0.5 * (14 / 1e-3) ** 2 - 0
    assert lr[1] == pytest.approx(-np.log(1e-3) - 0.5 * (14 / 1e-3) ** 2)
    assert ul.likelihood_ratio(np.stack([target, target]), unlearned, retrained).shape == (2, 2)
    assert ul.default_variance(8) == "global" and ul.default_variance(64) == "per_image"
    with pytest.raises(ValueError, match="same n images"):
        ul.likelihood_ratio(target[:1], unlearned, retrained)


def test_ulira_accuracy_is_one_half_for_identical_shadow_sets_and_one_when_separated():
    rng = np.random.default_rng(0)
    shadows = rng.normal(size=(8, 50))
    held = rng.normal(size=(4, 50))
    same = ul.likelihood_ratio(held, shadows, shadows)
    assert np.allclose(same, 0.0)
    assert ul.ulira_accuracy(same, same) == 0.5  # LR = 0: "retrained" for both sides
    u, r = rng.normal(5, 1, size=(8, 50)), rng.normal(-5, 1, size=(8, 50))
    lr_u = ul.likelihood_ratio(rng.normal(5, 1, size=(4, 50)), u, r)
    lr_r = ul.likelihood_ratio(rng.normal(-5, 1, size=(4, 50)), u, r)
    assert ul.ulira_accuracy(lr_u, lr_r) == 1.0
    assert ul.ulira_accuracy([[1.0, -1.0]], [[1.0, -1.0]]) == 0.5  # (½·1 + ½·0 + ½·0 + ½·1) / 2
    with pytest.raises(ValueError):
        ul.ulira_accuracy(np.zeros((2, 3)), np.zeros((3, 2)))


def _independent_lira(target, u, r, held_u, held_r):
    """LiRA's online score with the median and the global (in-model) variance, and its ROC
    figures, written from tensorflow/privacy's plot.py without mucomp's code: numpy and scipy only."""
    from scipy.stats import norm

    sd = np.std(u)
    def score(x):
        return norm.logpdf(x, np.median(u, axis=0), sd) - norm.logpdf(x, np.median(r, axis=0), sd)
    pos, neg = score(held_u).ravel(), score(held_r).ravel()
    thresholds = np.unique(np.concatenate([pos, neg, [np.inf]]))[::-1]
    tpr = np.array([(pos >= t).mean() for t in thresholds])
    fpr = np.array([(neg >= t).mean() for t in thresholds])
    auc = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    tpr_1 = tpr[np.flatnonzero(fpr < 0.01)[-1]]
    balanced = np.max(1 - (fpr + 1 - tpr) / 2)
    return score(target), auc, tpr_1, balanced


def test_ulira_stores_lira_auc_and_tpr_at_low_fpr_matching_an_independent_computation():
    rng = np.random.default_rng(3)
    n, k, m = 300, 8, 4
    shift = rng.normal(0.0, 1.0, size=n)  # each image its own difficulty
    u = shift + 0.8 + rng.normal(0, 1, size=(k, n))
    r = shift + rng.normal(0, 1, size=(k, n))
    held_u, held_r = shift + 0.8 + rng.normal(0, 1, size=(m, n)), shift + rng.normal(0, 1, size=(m, n))
    target = shift + 0.8 + rng.normal(0, 1, size=n)
    report = ul.ulira_report(target, u, r, held_u, held_r)
    lr, auc, tpr_1, balanced = _independent_lira(target, u, r, held_u, held_r)
    assert report["estimator"] == {"center": "median", "variance": "global"}  # K = 8 < 64
    assert np.allclose(report["lr"], lr)
    assert report["auc"] == pytest.approx(auc, abs=1e-12)
    assert report["tpr_at_fpr"]["0.01"] == pytest.approx(tpr_1)
    assert report["balanced_accuracy_best"] == pytest.approx(balanced)
    assert report["tpr_at_fpr"]["0.001"] is not None  # 1,200 negatives resolve 0.1 %
    assert 0.6 < report["auc"] < 0.9 and report["accuracy"] > 0.5  # a real but imperfect signal
    small = ul.ulira_report(target[:50], u[:, :50], r[:, :50], held_u[:1, :50], held_r[:1, :50])
    assert small["tpr_at_fpr"] == {"0.01": None, "0.001": None}  # 50 negatives resolve neither level
    same = ul.ulira_report(r[0], r, r, held_r, held_r)
    assert same["auc"] == pytest.approx(0.5)  # identical shadow sets: LR = 0 for everyone


def test_shadow_seeds_skip_the_targets_training_seed():
    assert ul.shadow_seeds(3) == [1000, 1001, 1002]
    assert ul.shadow_seeds(3, exclude=[1001]) == [1000, 1002, 1003]


# ---------------------------------------------------------------------------------------------
# Relearning definitions


def test_relearning_attacks_every_model_of_a_data_set_with_one_protocol():
    from mucomp.experiment.audits import relearn_settings

    def result(kind, method, dataset="digits", arch=None):
        return {"kind": kind, "config": {"dataset": dataset, "method": method, "arch": arch, "forget": "class:3"}}

    for dataset, arch in (("digits", None), ("cifar10", None), ("fashion_mnist", "fmnist_cnn")):
        settings = {relearn_settings(result("unlearned", method, dataset, arch))
                    for method in ("ga", "ft", "ssd", "bad_teacher", "unsir", "scrub")}
        settings.add(relearn_settings(result("retrained", None, dataset, arch)))
        settings.add(relearn_settings(result("custom", None, dataset, arch)))
        assert len(settings) == 1, (dataset, settings)  # one lr and batch, whatever made the model


def test_relearn_split_and_summary_on_hand_made_curves():
    forget = np.arange(100, 140)
    relearn, held = rl.relearn_split(forget, 0.05, seed=0)
    assert relearn.size == 2 and held.size == 38 and not set(relearn) & set(held)
    assert np.array_equal(rl.relearn_split(forget, 0.05, seed=0)[0], relearn)  # seeded
    # A large forget set (a Fashion-MNIST class) is evaluated on a seeded 1,000 of its other images.
    big = np.arange(6000) * 3
    relearn, held = rl.relearn_split(big, 0.05, seed=1)
    assert relearn.size == 300 and held.size == rl.EVALUATION_CAP == 1000
    assert not set(relearn) & set(held) and set(held) <= set(big) and np.all(np.diff(held) > 0)
    assert np.array_equal(rl.relearn_split(big, 0.05, seed=1)[1], held)
    assert rl.steps_to_reach([0, 2, 4, 6], [0.0, 0.3, 0.6, 0.9], 0.5) == 4
    assert rl.steps_to_reach([0, 2], [0.0, 0.1], 0.5) is None
    assert rl.relative_steps(2, 8) == 0.25 and rl.relative_steps(0, 0) is None
    # A curve that never reaches the target is censored: no ratio, never the budget's 1.0.
    assert rl.relative_steps(None, 10) is None and rl.relative_steps(None, None) is None
    curves = {who: {curve: {"steps": [0, 25, 50], "forget_accuracy": [0.0, 0.1, 0.2]}
                    for curve in rl.CURVES} for who in ("model", "retrained")}
    curves["retrained"]["forget"]["forget_accuracy"] = [0.0, 0.3, 0.6]
    summary = rl.relearn_summary(curves, target=0.5, steps=50)
    assert summary["steps_to_target"]["model"] is None and summary["steps_to_target"]["retrained"] == 50
    assert summary["censored"] == {"model": True, "retrained": False, "model_retain_only": True,
                                   "retrained_retain_only": True}
    assert summary["relative"] is None
    from mucomp.results.attack import relearn_summary_text

    text = relearn_summary_text({**summary, "steps": 50, "target": 0.5})
    assert "not reached in 50 steps for this model" in text and "censored" in text and "1.00" not in text


# ---------------------------------------------------------------------------------------------
# A tiny digits case, in a private home


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A private MUCOMP_HOME with 3-epoch digits references (class 3, training seed 0), their
    stored results (UMAP replaced by a projection, no probes) and one stored GA experiment."""
    import torch

    import mucomp.experiment.figures
    from mucomp import recipes
    from mucomp.data import Scenario
    from mucomp.runner import ExperimentConfig, clear_scenario_cache, prepare_scenario, run_experiment
    from mucomp.store import ExperimentStore
    from mucomp.training import TrainRecipe

    home = tmp_path_factory.mktemp("audits-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    patch.setitem(recipes.RECIPES, "digits", TrainRecipe(epochs=3, lr=0.1, batch_size=128))
    patch.setattr(mucomp.experiment.figures, "embed", lambda features, seed, init=None: np.asarray(features)[:, :2] * 1.0)
    patch.setattr(mucomp.experiment.figures, "layer_probes", lambda evals, subsets, layers, seed=0: {})  # tested in test_audits
    threads = torch.get_num_threads()
    store = ExperimentStore()
    scenario = Scenario("digits", 3, 0)
    state = prepare_scenario(scenario, store)
    experiment = run_experiment(ExperimentConfig.for_scenario(scenario, unlearn_seed=0, method="ga", epochs=3), store,
                                references=state)
    yield SimpleNamespace(home=home, store=store, scenario=scenario, state=state, experiment=experiment)
    patch.undo()
    clear_scenario_cache()
    torch.set_num_threads(threads)


def test_relearning_brings_the_class_back_at_once_for_the_original_not_for_the_retrained(tiny):
    state = tiny.state
    start = time.perf_counter()
    from mucomp.experiment.relearn import forget_accuracy, relearn_audit

    block = relearn_audit(state.original.model, state.retrained.model, 0.0, tiny.scenario, lr=0.05, batch_size=32,
                          steps=6, every=2, original_eval=lambda idx: forget_accuracy(
                              state.original.model, tiny.scenario.data.train, idx))
    assert time.perf_counter() - start < 10
    assert block["curves"]["model"]["forget"]["steps"] == [0, 2, 4, 6]
    assert block["steps_to_target"]["model"] == 0  # the Original never forgot
    assert block["curves"]["retrained"]["forget"]["forget_accuracy"][0] < block["target"]
    assert block["k"] == round(0.05 * tiny.scenario.forget_indices.size)
    reached = block["steps_to_target"]["retrained"]
    assert block["censored"]["retrained"] == (reached is None)
    assert block["relative"] == (None if reached is None else 0.0)  # censored: no ratio
    # the model itself is untouched
    assert forget_accuracy(state.original.model, tiny.scenario.data.train,
                           tiny.scenario.forget_indices) == pytest.approx(block["original_forget_accuracy"], abs=0.1)


def test_an_audit_job_stores_ulira_and_relearning_with_the_experiment_and_reuses_the_shadows(tiny):
    from mucomp.execution import InlineExecutor, MakeShadowPair, RunAudit
    from mucomp.execution.audits import audit_requests

    experiment_id = tiny.experiment.id
    before = tiny.store.load(experiment_id).result
    requests = audit_requests(experiment_id, ["ulira", "relearn"], parallel=True, shadows=1, held_out=1, steps=6)
    assert [type(r) for r in requests] == [MakeShadowPair] * 2 + [RunAudit]
    executor = InlineExecutor()
    try:
        ids = executor.submit(requests)
        assert executor.wait(120, ids)
        jobs = [executor.get(i) for i in ids]
    finally:
        executor.shutdown()
    assert [j["state"] for j in jobs] == ["completed"] * 3, [j["message"] for j in jobs]
    assert jobs[-1]["result"]["ulira_acc"] is not None and jobs[-1]["stage"] == "saving"
    after = tiny.store.load(experiment_id).result
    ulira, relearn = after["audits"]["ulira"], after["audits"]["relearn"]
    assert after["metrics"]["ulira_acc"] == ulira["accuracy"] and 0.0 <= ulira["accuracy"] <= 1.0
    assert after["metrics"]["relearn_steps"] == relearn["relative"]
    assert ulira["cached_pairs"] == 2 and len(ulira["lr"]) == tiny.scenario.forget_indices.size
    # nothing stored before is lost, and the listing index sees the new metrics
    for key in ("attack", "cka", "embedding", "config", "epochs"):
        assert after[key] == before[key], key
    assert after["audits"]["leakage"] == before["audits"]["leakage"]
    assert {k: v for k, v in after["metrics"].items() if k not in ("ulira_acc", "relearn_steps")} == before["metrics"]
    row = next(e for e in tiny.store.entries() if e["id"] == experiment_id)
    assert row["metrics"]["ulira_acc"] == ulira["accuracy"] and after["updated_at"]
    # A second experiment of the same config reuses every shadow pair.
    start = time.perf_counter()
    from mucomp.experiment.shadows import ShadowSpec, run_ulira, shadow_config

    again = run_ulira(ShadowSpec(shadow_config(requests[0].spec.config, 0), "method"),
                      np.asarray(ulira["phi"]), shadows=1, held_out=1)
    assert again["cached_pairs"] == 2 and again["accuracy"] == ulira["accuracy"] and time.perf_counter() - start < 5


def test_update_audits_merges_and_refuses_a_deleted_experiment(tiny, tmp_path):
    from mucomp.store import ExperimentNotFoundError, ExperimentStore
    from mucomp.store.update import update_audits

    source = tiny.store.load(tiny.experiment.id)
    store = ExperimentStore(tmp_path / "experiments")
    copy_id = store.save({**source.result, "id": "copy0001"}, source.state_dict()).id
    update_audits(store, copy_id, {"one": {"x": 1}}, {"m1": 0.25})
    update_audits(store, copy_id, {"two": {"y": 2}}, {"m2": 0.5})
    merged = store.load(copy_id).result
    assert merged["audits"]["one"] == {"x": 1} and merged["audits"]["two"] == {"y": 2}
    assert merged["metrics"]["m1"] == 0.25 and merged["metrics"]["m2"] == 0.5 and "leakage" in merged["audits"]
    assert not [p for p in (store.root / copy_id).iterdir() if p.name.startswith(".")]  # no temporary file left
    store.delete(copy_id)
    with pytest.raises(ExperimentNotFoundError):
        update_audits(store, copy_id, {"three": {}})


def test_ulira_refuses_models_it_cannot_remake():
    from mucomp.experiment.audits import AuditError, shadow_spec

    custom = {"kind": "custom", "config": {"dataset": "digits", "forget_class": 3, "method": "custom"}}
    with pytest.raises(AuditError, match="no method to re-run"):
        shadow_spec(custom)
    chained = {"kind": "unlearned", "config": {"dataset": "digits", "forget_class": 3, "method": "ga", "base": "abcd1234"}}
    with pytest.raises(AuditError, match="started from abcd1234"):
        shadow_spec(chained)


# ---------------------------------------------------------------------------------------------
# The Attack page's tabs


def test_the_attack_page_has_audit_tabs_that_run_and_show_the_audits(tiny, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from mucomp.execution import InlineExecutor
    from mucomp.ui import session

    executor = InlineExecutor()
    monkeypatch.setattr(session, "get_queue", lambda: executor)
    st.cache_data.clear()
    st.cache_resource.clear()
    ids = {e.kind: e.id for e in tiny.store.list()}
    try:
        at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
        at.run()
        at.session_state["mucomp_scenario"] = tiny.scenario
        at.session_state["mucomp_model_a"] = ids["retrained"]
        at.session_state["mucomp_model_b"] = tiny.experiment.id
        at.switch_page("pages/4_Attack.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert [t.label for t in at.tabs] == ["Threshold attack", "Per-example (U-LiRA)", "Relearning", "Many models"]
        charts = {c.key for c in at.get("plotly_chart")}
        assert "attack_distribution_b" in charts  # the threshold attack as before
        # B has U-LiRA from the job test above (when it ran first) or not; the Retrained has neither.
        at.button(key="audit_run_relearn_a").click().run()
        deadline = time.monotonic() + 60
        while "audit_relearn_a" not in {c.key for c in at.get("plotly_chart")}:
            assert time.monotonic() < deadline, [e.value for e in at.error]
            time.sleep(0.2)
            at.run()
            assert not at.exception, [e.value for e in at.exception]
        figure = json.loads(next(c for c in at.get("plotly_chart") if c.key == "audit_relearn_a").proto.spec)
        assert len([t for t in figure["data"] if t.get("meta") != "target"]) == 4  # + the target's legend entry
        assert "1.00" in [m.value for m in at.metric if m.label == "Relative steps"]  # Retrained vs itself
        if "ulira" in (tiny.store.load(tiny.experiment.id).result.get("audits") or {}):
            assert "audit_ulira_lr_b" in {c.key for c in at.get("plotly_chart")}
            assert any(m.label == "U-LiRA accuracy" for m in at.metric)
        else:
            assert any(b.key == "audit_run_ulira_b" for b in at.button)
    finally:
        executor.shutdown()
        st.cache_data.clear()
        st.cache_resource.clear()


def test_the_cli_runs_an_audit_through_the_job_api_and_prints_it(tiny, capsys):
    from mucomp.cli import main as cli_main

    experiment_id = tiny.experiment.id
    assert cli_main(["audit", experiment_id, "--relearn", "--steps", "4", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["relearn"]["steps"] == 4 and printed["relearn"]["curves"]["model"]["forget"]["steps"][-1] == 4
    assert tiny.store.load(experiment_id).result["audits"]["relearn"]["steps"] == 4
    assert "leakage" in printed  # the stored audits are printed with it
    assert cli_main(["audit", experiment_id]) == 0
    assert "relearning (" in capsys.readouterr().out
    assert cli_main(["audit", experiment_id, "--ulira", "--shadows", "0"]) == 2


def test_the_screen_table_has_the_audit_columns(tiny):
    from mucomp.compare import experiment_table
    from mucomp.ui import tables

    listing = tiny.store.light_results()
    table = experiment_table(listing)
    row = table[table["ID"] == tiny.experiment.id].iloc[0]
    metrics = tiny.store.load(tiny.experiment.id).result["metrics"]
    assert row["Leak JS"] == pytest.approx(metrics["leakage_js"])
    for column, key in (("U-LiRA", "ulira_acc"), ("Relearn", "relearn_steps")):
        assert (np.isnan(row[column]) if metrics.get(key) is None else row[column] == pytest.approx(metrics[key]))
    assert set(tables.AUDIT_COLUMNS) <= set(table.columns) and set(tables.AUDIT_COLUMNS) == set(tables.AUDIT_COLUMN_WIDTHS)
    assert "Relearn" in tables.styled(tables.readable(table, None), []).to_html()
