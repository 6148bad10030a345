"""Ensembles of Retrained and unlearned models (issue 32): cached members that grow, the stored
typed records, the Retrained ensemble shared by every method, the ETA, the jobs, the CLI and
cancel. Digits with 1-epoch references and 1-epoch methods, N <= 3, in a private MUCOMP_HOME."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    """A private home with 1-epoch digits references and the module's ensembles API."""
    import torch

    from mucomp import recipes
    from mucomp.config import ExperimentConfig
    from mucomp.data import Scenario
    from mucomp.training import TrainRecipe

    home = tmp_path_factory.mktemp("ensembles-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    patch.setitem(recipes.RECIPES, "digits", TrainRecipe(epochs=1, lr=0.1, batch_size=256))
    threads = torch.get_num_threads()
    scenario = Scenario("digits", 3, 0)

    def config(method: str = "ga", **hyper) -> ExperimentConfig:
        return ExperimentConfig.for_scenario(scenario, method=method, epochs=1, **hyper)

    yield SimpleNamespace(home=home, scenario=scenario, config=config)
    patch.undo()
    torch.set_num_threads(threads)


@pytest.fixture
def made(monkeypatch):
    """Which members were made (not read from the cache): ``[(kind, seed)]``."""
    import mucomp.experiment.ensembles as ensembles

    calls: list[tuple[str, int]] = []
    original = ensembles._member_model

    def counting(spec, seed, *args, **kwargs):
        calls.append((spec.kind, seed))
        return original(spec, seed, *args, **kwargs)

    monkeypatch.setattr(ensembles, "_member_model", counting)
    return calls


def test_members_are_cached_and_a_larger_n_makes_only_the_missing_ones(ens, made):
    from mucomp.audits.ulira import shadow_seeds
    from mucomp.experiment.ensembles import EnsembleSpec, member_path, run_ensemble
    from mucomp.references import cache_path

    config = ens.config("ga")
    first = run_ensemble(config, 3)
    assert made == [("retrained", 1000), ("retrained", 1001), ("retrained", 1002), ("unlearned", 0), ("unlearned", 1),
                    ("unlearned", 2)]
    made.clear()
    grown = run_ensemble(config, 4)
    assert made == [("retrained", 1003), ("unlearned", 3)]  # only the missing two
    made.clear()
    again = run_ensemble(config, 4)
    assert made == []
    u = grown["unlearned"]
    assert u.unlearn_seeds == [0, 1, 2, 3] and u.retrained_seeds == shadow_seeds(4, exclude=[0])
    assert again["unlearned"].confidences == u.confidences and again["unlearned"].epsilons == u.epsilons
    # the members of N = 3 are the first three of N = 4
    assert first["unlearned"].confidences.unlearned == u.confidences.unlearned[:3]
    assert first["unlearned"].confidences.retrained == u.confidences.retrained[:3]
    # Retrained members are the cached Retrained references U-LiRA's shadows train (no model twice)
    for seed in u.retrained_seeds:
        assert cache_path(ens.scenario.__class__("digits", 3, seed), "retrained").exists()
    for kind, seeds in (("unlearned", u.unlearn_seeds), ("retrained", u.retrained_seeds)):
        spec = EnsembleSpec(config, kind)
        assert all(member_path(spec, s).is_file() for s in seeds)
        assert member_path(spec, 0).parent.parent == ens.home / "ensembles" / "members"


def test_the_records_are_stored_typed_and_match_the_metrics(ens):
    from mucomp.audits import challenge_score, epsilon_resolution, forget_quality, klom, klom_p95
    from mucomp.experiment.ensembles import EnsembleSpec, ensemble_member, run_ensemble
    from mucomp.store.ensembles import EnsembleResult, ensemble_result_for, load_ensemble_results, retrained_result_for

    config = ens.config("ga")
    records = run_ensemble(config, 3)
    stored, problems = load_ensemble_results()
    assert problems == []
    u = ensemble_result_for(EnsembleSpec(config).stored_config(), stored)
    assert retrained_result_for(u.config, stored).n_models == 4  # the first test's larger one is kept
    r = records["retrained"]
    assert isinstance(u, EnsembleResult) and isinstance(r, EnsembleResult)
    assert u.to_json_dict() == records["unlearned"].to_json_dict()
    assert (u.kind, u.method, u.n_models, u.n_retrained, u.train_seed) == ("unlearned", "ga", 3, 3, 0)
    assert u.config["unlearn_seed"] == 0 and u.config["epochs"] == 1 and u.config["params"]  # resolved defaults
    assert u.forget_indices == ens.scenario.forget_indices.tolist()
    n_forget = len(u.forget_indices)
    assert len(u.epsilons) == len(u.points) == len(u.klom.forget) == n_forget
    assert len(u.klom.retain) == ens.scenario.retain_indices.size and len(u.klom.test) == len(ens.scenario.data.test)
    # F, the score and KLoM recomputed from the members' cached arrays with the metric functions
    spec_u, spec_r = EnsembleSpec(config, "unlearned"), EnsembleSpec(config, "retrained")
    mu = [ensemble_member(spec_u, s) for s in u.unlearn_seeds]
    mr = [ensemble_member(spec_r, s) for s in u.retrained_seeds]
    assert all(m.cached for m in mu + mr)
    f = forget_quality(np.stack([m.confidences for m in mu]), np.stack([m.confidences for m in mr]))
    assert u.forget_quality == pytest.approx(f, abs=0)
    mean = lambda ms, field: float(np.mean([getattr(m, field) for m in ms]))  # noqa: E731
    assert u.score == pytest.approx(challenge_score(f, mean(mu, "retain_accuracy"), mean(mr, "retain_accuracy"),
                                                    mean(mu, "test_accuracy"), mean(mr, "test_accuracy")))
    test_klom = klom(np.stack([m.margins["test"] for m in mu]), np.stack([m.margins["test"] for m in mr]))
    assert u.klom.test == pytest.approx(np.clip(test_klom, 0, None).tolist())
    assert u.klom_p95.test == pytest.approx(klom_p95(u.klom.test))
    assert u.resolution.model_dump() == epsilon_resolution(3)
    # the Retrained record: its own accuracies, the halves' figures, one half of 1 model resolves nothing
    assert (r.kind, r.method, r.n_models, r.forget_quality, r.score) == ("retrained", "retrained", 3, None, None)
    assert r.accuracies.retrained_retain == pytest.approx(u.accuracies.retrained_retain)
    assert r.self_score is None and r.confidences.retrained == u.confidences.retrained
    assert len(r.member_seconds) == 3 and all(s > 0 for s in r.member_seconds)


def test_the_retrained_ensemble_is_shared_by_two_methods_and_its_larger_record_kept(ens, made):
    from mucomp.experiment.ensembles import run_ensemble

    ga = run_ensemble(ens.config("ga"), 4)
    made.clear()
    ft = run_ensemble(ens.config("ft", batch_size=256), 3)
    assert made == [("unlearned", 0), ("unlearned", 1), ("unlearned", 2)]  # no Retrained model made again
    assert ft["retrained"].key == ga["retrained"].key and ft["unlearned"].key != ga["unlearned"].key
    assert ft["unlearned"].confidences.retrained == ga["unlearned"].confidences.retrained[:3]
    from mucomp.store.ensembles import load_ensemble_results, retrained_result_for

    stored = retrained_result_for(ft["unlearned"].config, load_ensemble_results()[0])
    assert stored.n_models == 4  # the N = 3 run did not replace the larger Retrained record


def test_the_eta_counts_the_missing_members_from_their_measured_seconds(ens):
    from mucomp.execution.ensembles import ESTIMATED_TRAINING_SECONDS, ensemble_eta, eta_text
    from mucomp.experiment.ensembles import EnsembleSpec, recorded_seconds, run_ensemble

    config = ens.config("ga")
    run_ensemble(config, 4)
    cached = ensemble_eta(config, 4)
    assert cached["missing"] == {"unlearned": 0, "retrained": 0} and cached["seconds"] == 0
    assert "cached" in eta_text(cached)
    grow = ensemble_eta(config, 5, workers=2)
    per_r = float(np.median([r["seconds"] for r in recorded_seconds(EnsembleSpec(config, "retrained"))]))
    per_u = float(np.median([r["seconds"] for r in recorded_seconds(EnsembleSpec(config, "unlearned"))]))
    assert grow["missing"] == {"unlearned": 1, "retrained": 1} and grow["to_train"] == 1
    assert grow["per_member"] == {"unlearned": per_u, "retrained": per_r}
    assert grow["seconds"] == pytest.approx((per_u + per_r) / 2)
    assert grow["based_on"]["unlearned"].startswith("measured")
    # a configuration never made: its unlearned models are estimated at a Retrained model's time
    fresh = ensemble_eta(ens.config("rl"), 3)
    assert fresh["missing"]["unlearned"] == 3 and fresh["per_member"]["unlearned"] == per_r
    assert "estimate" in fresh["based_on"]["unlearned"] and per_r != ESTIMATED_TRAINING_SECONDS["digits_cnn"]
    assert eta_text(fresh).startswith("ETA ")


def test_ensemble_jobs_make_members_then_score_and_label_them(ens):
    from mucomp.execution import InlineExecutor, MakeEnsembleMember, RunEnsemble
    from mucomp.execution.ensembles import ensemble_requests
    from mucomp.ui.session import describe_request

    config = ens.config("ga", lr=0.02)
    requests = ensemble_requests(config, 3, parallel=True)
    assert [type(r) for r in requests] == [MakeEnsembleMember] * 3 + [RunEnsemble]  # the Retrained three are cached
    assert [(r.spec.kind, r.seed) for r in requests[:3]] == [("unlearned", 0), ("unlearned", 1), ("unlearned", 2)]
    assert "unlearning seed 1" in describe_request(requests[1]) and "Ensembles of 3" in describe_request(requests[3])
    executor = InlineExecutor()
    try:
        ids = executor.submit(requests)
        assert executor.wait(120, ids)
        jobs = [executor.get(i) for i in ids]
    finally:
        executor.shutdown()
    assert [j["state"] for j in jobs] == ["completed"] * 4, [j["message"] for j in jobs]
    assert jobs[0]["result"]["cached"] is False and jobs[-1]["stage"] == "scoring"
    assert jobs[-1]["result"]["n_models"] == 3 and 0.0 <= jobs[-1]["result"]["ensemble_F"] <= 1.0
    assert ensemble_requests(config, 3, parallel=True)[0].__class__ is RunEnsemble  # nothing missing now


def test_the_cli_prints_the_eta_and_the_record_and_refuses_bad_arguments_in_one_line(ens, capsys):
    from mucomp.audits.challenge import epsilon_resolution
    from mucomp.cli import main as cli_main

    assert cli_main(["ensemble", "--forget-class", "3", "--method", "ga", "--epochs", "1", "--n", "3", "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert (record["kind"], record["method"], record["n_models"]) == ("unlearned", "ga", 3)
    assert set(record["klom_p95"]) == {"forget", "retain", "test"} and record["resolution"] == epsilon_resolution(3)
    assert captured.err.startswith("mucomp ensemble: ETA ")
    assert cli_main(["ensemble", "--forget-class", "3", "--method", "ga", "--epochs", "1", "--n", "3"]) == 0
    text = capsys.readouterr().out
    assert "forgetting quality F" in text and "KLoM P95" in text and "N = 3 unlearned" in text
    for argv, option in ((["--forget-class", "3", "--method", "ga", "--n", "2"], "--n"),
                         (["--forget-class", "3", "--method", "nope"], "--method"),
                         (["--method", "ga", "--forget", "class:99"], "--forget")):
        assert cli_main(["ensemble", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mucomp ensemble: error: ") and option in err and "\n" not in err


def test_cancel_stops_between_members_and_stores_nothing(ens):
    from mucomp.experiment.ensembles import EnsembleSpec, member_path, run_ensemble
    from mucomp.progress import RunStopped
    from mucomp.store.ensembles import ensemble_key, load_ensemble_results

    config = ens.config("rl")
    asked = []

    def progress(done, total, **figures):
        if done >= 1 and figures.get("kind") == "unlearned":
            asked.append(True)

    with pytest.raises(RunStopped) as stopped:
        run_ensemble(config, 3, progress=progress, cancel=lambda: bool(asked))
    assert stopped.value.status == "cancelled"
    spec = EnsembleSpec(config)
    assert not member_path(spec, 1).exists()
    key = ensemble_key(spec.stored_config())
    assert all(r.key != key for r in load_ensemble_results()[0])
