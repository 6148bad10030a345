import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import mucomp.data as data_module
from mucomp.execution import JobQueue
from mucomp.runner import (
    ExperimentConfig,
    ExperimentStopped,
    expand_grid,
    prepare_scenario,
    run_experiment,
)
from mucomp.store import ExperimentStore, StoreError


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ExperimentStore(tmp_path_factory.mktemp("runner-store"))


@pytest.fixture(scope="module")
def ga_experiment(store, digits_references):
    return run_experiment(ExperimentConfig("digits", 3, 0, "ga"), store)


def test_experiment_holds_every_figure_the_pages_need(ga_experiment, digits_scenario):
    result = ga_experiment.result
    metrics = result["metrics"]
    for key in ("UA", "RA", "TUA", "TRA", "RT", "PS", "MIA_efficacy", "avg_gap", "accs", "t_accs",
                "label_dist", "conf_dist", "t_label_dist", "t_conf_dist"):
        assert key in metrics, key
    assert 0 <= metrics["PS"] <= 1 and metrics["RT"] > 0
    cost = metrics["cost"]
    assert set(cost) == {"samples_forwarded", "samples_backpropagated", "optimizer_steps"}
    assert cost["samples_forwarded"] == cost["samples_backpropagated"] > 0 and cost["optimizer_steps"] > 0
    assert result["timings"]["warmup"] >= 0 and result["timings"]["unlearning"] == metrics["RT"]
    assert set(result["cka"]) == {"layers", "original", "retrained"}
    assert set(result["cka"]["original"]) == {"train_forget", "train_retain", "test_forget", "test_retain"}
    assert list(result["cka"]["retrained"]["train_forget"]) == result["cka"]["layers"]
    n_embed = digits_scenario.embedding_indices.size
    assert len(result["embedding"]["x"]) == n_embed == len(result["embedding"]["probs_t2"])
    assert len(result["attack"]["entropy"]) == digits_scenario.forget_indices.size
    assert [record["epoch"] for record in result["epochs"]] == list(range(1, result["config"]["epochs"] + 1))
    assert result["config"]["lr"] is not None and result["config"]["method"] == "ga"


def test_a_result_records_the_precision_its_evaluation_ran_in(store, ga_experiment, digits_scenario, monkeypatch):
    """fp32 by default; under MUCOMP_PRECISION=bf16 the references are evaluated again in that
    precision (never compared across precisions) and the stored result says what ran."""
    from mucomp.precision import cpu_bf16_supported
    from mucomp.runner import store_custom_model
    from mucomp.schema import ResultSchemaError, check_result
    from mucomp.ui.tables import figures_table

    assert ga_experiment.result["evaluation"] == {"precision": "fp32", "device": "cpu"}
    assert all(e.result["evaluation"]["precision"] == "fp32" for e in store.list())
    from collections import OrderedDict

    from mucomp.experiment import state as states

    fp32_state = prepare_scenario(digits_scenario, store)
    monkeypatch.setattr(states, "_STATES", OrderedDict(states._STATES))  # the module's cache is left as it was
    monkeypatch.setenv("MUCOMP_PRECISION", "bf16")
    bf16_state = prepare_scenario(digits_scenario, store)
    ran = "bf16" if cpu_bf16_supported() else "fp32"
    assert bf16_state is not fp32_state and bf16_state.retrained.evals["train"].precision == ran
    upload = store_custom_model(bf16_state.original.model, digits_scenario, store, label="bf16 copy",
                                references=bf16_state)
    assert upload.result["evaluation"] == {"precision": ran, "device": "cpu"}
    rows = dict(figures_table(upload.result).itertuples(index=False))
    assert rows["Evaluated in"] == f"{ran} on cpu"
    broken = {**upload.result, "evaluation": {"precision": "fp8"}}
    with pytest.raises(ResultSchemaError, match="evaluation"):
        check_result(broken)
    store.delete(upload.id)


def test_references_are_stored_and_protected(store, ga_experiment):
    kinds = sorted(e.kind for e in store.list())
    assert kinds.count("original") == 1 and kinds.count("retrained") == 1
    reference = next(e for e in store.list() if e.kind == "retrained")
    assert reference.metrics["PS"] == 1.0 and reference.metrics["avg_gap"] == 0.0
    assert reference.metrics["cost"] is None  # references ran no unlearning method
    with pytest.raises(StoreError, match="can't be deleted"):
        store.delete(reference.id)


def test_reference_evaluations_are_reused(store, ga_experiment, digits_scenario):
    first = prepare_scenario(digits_scenario, store)
    assert prepare_scenario(digits_scenario, store) is first


def test_stored_references_are_read_back_and_prepared_states_are_bounded(
    store, ga_experiment, digits_scenario, tmp_path, monkeypatch
):
    import shutil
    from collections import OrderedDict

    from mucomp.experiment import state as states

    first = prepare_scenario(digits_scenario, store)
    other = ExperimentStore(tmp_path / "other-store")
    for ref in (first.original, first.retrained):  # references stored by an earlier process
        shutil.copytree(store.root / ref.experiment_id, other.root / ref.experiment_id)
    monkeypatch.setattr(states, "_STATES", OrderedDict(states._STATES))  # the module's cache is left as it was
    monkeypatch.setattr(states, "MAX_SCENARIO_STATES", 1)

    def no_figures(*args, **kwargs):
        raise AssertionError("the figures of a stored reference were recomputed")

    monkeypatch.setattr(states, "model_figures", no_figures)
    state = prepare_scenario(digits_scenario, other)
    assert state is not first
    assert state.retrained_metrics == store.load(first.retrained.experiment_id).metrics
    assert list(states._STATES.values()) == [state]  # the least recently used state was dropped
    assert prepare_scenario(digits_scenario, other) is state


def test_one_forward_pass_per_model_and_split(store, digits_references, monkeypatch, digits_scenario):
    state = prepare_scenario(digits_scenario, store)  # references already evaluated
    seen = []
    stage = {"name": None}
    original_batch = data_module.Split.batch

    def counting_batch(self, indices):
        seen.append((stage["name"], self.name, np.asarray(indices).copy()))
        return original_batch(self, indices)

    def progress(name, fraction, **_):
        stage["name"] = name

    monkeypatch.setattr(data_module.Split, "batch", counting_batch)
    run_experiment(ExperimentConfig("digits", 3, 0, "ft", epochs=1), store, progress)
    for split_name in ("train", "test"):
        evaluated = [idx for name, split, idx in seen if name == "evaluating" and split == split_name]
        all_indices = np.sort(np.concatenate(evaluated))
        size = len(state.scenario.data.split(split_name))
        assert np.array_equal(all_indices, np.arange(size)), split_name  # every image exactly once
    assert not [s for s in seen if s[0] in ("privacy", "similarity", "embedding", "saving")]


def test_diverged_run_is_reported_and_not_stored(store, digits_references):
    before = len(store.list())
    with pytest.raises(ExperimentStopped) as info:
        run_experiment(ExperimentConfig("digits", 3, 0, "ga", lr=1e6, params={"clip_grad_norm": 0.0}), store)
    assert info.value.status == "diverged" and "learning rate" in str(info.value)
    assert len(store.list()) == before


def test_base_can_be_an_earlier_experiment_of_the_same_scenario(store, ga_experiment):
    second = run_experiment(ExperimentConfig("digits", 3, 0, "ft", epochs=1, base=ga_experiment.id), store)
    assert second.config["base"] == ga_experiment.id
    with pytest.raises(ValueError, match="not to this run's"):
        run_experiment(ExperimentConfig("digits", 4, 0, "ft", epochs=1, base=ga_experiment.id), store)


def test_bad_configs_are_refused_before_any_work(store):
    with pytest.raises(ValueError, match="out of range"):
        ExperimentConfig("digits", 12)
    with pytest.raises(ValueError):
        run_experiment(ExperimentConfig("digits", 3, 0, "no-such-method"), store)
    with pytest.raises(ValueError, match="lr"):
        run_experiment(ExperimentConfig("digits", 3, 0, "ga", lr=-1.0), store)


def test_grid_expands_every_combination_in_order():
    configs = expand_grid(ExperimentConfig("digits", 3, 0, "ga"), {"epochs": [3, 5], "lr": [1e-4, 3e-4]})
    assert [(c.epochs, c.lr) for c in configs] == [(3, 1e-4), (3, 3e-4), (5, 1e-4), (5, 3e-4)]
    configs = expand_grid(ExperimentConfig("digits", 3, 0, "scrub"), {"kd_T": [2.0, 4.0]})
    assert [c.params["kd_T"] for c in configs] == [2.0, 4.0]


def test_job_queue_runs_in_order_and_a_second_request_waits():
    import threading

    release = threading.Event()
    order = []

    class Done:
        def __init__(self, name):
            self.id = name

    def run(config, progress, cancel, owner):
        progress("unlearning", 0.5, epoch=1)
        if config == "slow":
            release.wait(10)
        if config == "boom":
            raise RuntimeError("exploded")
        if config == "stop":
            raise ExperimentStopped("diverged", "loss became nan")
        order.append(config)
        return Done(config)

    queue = JobQueue(run)
    first = queue.submit(["slow"], owner="a")
    second = queue.submit(["fast", "boom", "stop", "never"], owner="b")
    assert queue.cancel(second[3], owner="a") is False  # not a's job
    assert queue.cancel(second[3], owner="b") is True
    assert queue.get(second[0])["state"] == "queued"  # waits behind the running one
    release.set()
    assert queue.wait(10)
    states = {j["id"]: j["state"] for j in queue.jobs()}
    assert states == {first[0]: "completed", second[0]: "completed", second[1]: "failed",
                      second[2]: "diverged", second[3]: "cancelled"}
    assert order == ["slow", "fast"]
    assert queue.get(second[1])["message"] == "exploded"
    assert [j["id"] for j in queue.jobs(owner="a")] == first


def test_job_queue_cancels_a_running_experiment(store, digits_references):
    queue = JobQueue(lambda config, progress, cancel, owner: run_experiment(config, store, progress, cancel, owner=owner))
    [job] = queue.submit([ExperimentConfig("digits", 3, 0, "retrain")])
    import time

    deadline = time.monotonic() + 60
    while queue.get(job)["stage"] != "unlearning" and time.monotonic() < deadline:
        time.sleep(0.02)
    queue.cancel(job)
    assert queue.wait(60)
    assert queue.get(job)["state"] == "cancelled"


def test_cli_run_list_show_restart(tmp_path, digits_references, monkeypatch, capsys):
    import os

    from mucomp.cli import main as cli_main

    env = dict(os.environ)
    store_root = tmp_path / "home"
    env["MUCOMP_HOME"] = str(store_root)
    # Reuse the session's trained references: same recipe, same files.
    from mucomp import settings

    (store_root).mkdir()
    (store_root / "references").symlink_to(settings.references_dir(), target_is_directory=True)

    def mucomp(*args, timeout=600):
        return subprocess.run([sys.executable, "-m", "mucomp.cli", *args], capture_output=True, text=True,
                              env=env, timeout=timeout)

    def refused(*args) -> tuple[int, str]:
        """Exit code and stderr of a command run in this process (the refusals need no new one)."""
        capsys.readouterr()
        try:
            code = cli_main(list(args))
        except SystemExit as exit_:
            code = exit_.code
        return code, capsys.readouterr().err

    # The run in this process (warm), the listing and showing in new ones: the store survives
    # the restart.
    monkeypatch.setenv("MUCOMP_HOME", str(store_root))
    capsys.readouterr()
    assert cli_main(["run", "--dataset", "digits", "--forget-class", "3", "--method", "ga", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("UA", "RA", "TUA", "TRA", "RT", "PS", "PS_exact", "MIA_efficacy", "avg_gap", "accs", "label_dist"):
        assert key in result["metrics"]
    assert result["cka"]["original"]["train_forget"] and result["embedding"]["x"]
    listed = mucomp("list", "--json")  # a new process: the store survives the restart
    assert listed.returncode == 0, listed.stderr
    ids = [row["id"] for row in json.loads(listed.stdout)]
    assert result["id"] in ids
    shown = mucomp("show", result["id"], "--json")
    assert json.loads(shown.stdout)["metrics"] == result["metrics"]

    capsys.readouterr()
    assert cli_main(["audit", result["id"], "--json"]) == 0
    audited = json.loads(capsys.readouterr().out)
    assert audited["leakage"] == result["audits"]["leakage"] and set(audited["probes"]) == set(result["cka"]["layers"])
    code, err = refused("run", "--forget-class", "3", "--method", "nope")
    assert code == 2 and "--method" in err
    code, err = refused("run", "--forget-class", "3", "--method", "ga", "--grid", "epochs=x")
    assert code == 2 and "epochs" in err
    code, err = refused("show", "../etc")
    assert code == 2 and "not a valid experiment id" in err
    for args in (("run", "--forget-class", "eleven", "--method", "ga"), ("list", "--forget-class", "10")):
        code, err = refused(*args)
        assert code == 2 and "--forget-class" in err and "0-9" in err, err
    for base in ("abcdef99", "../x"):
        code, err = refused("run", "--forget-class", "3", "--method", "ga", "--base", base)
        assert code == 2 and "--base" in err, err
    for scenario in (("--forget-class", "4"), ("--forget-class", "3", "--seed", "1")):
        code, err = refused("run", *scenario, "--method", "ga", "--base", result["id"])
        assert code == 2 and "--base" in err and "same scenario" in err, err
    capsys.readouterr()
    assert cli_main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # refused before any reference work
    assert {(row["forget_class"], row["train_seed"]) for row in rows} == {(3, 0)}
    archive = tmp_path / "picked.zip"
    assert refused("export", result["id"], "-o", str(archive))[0] == 0 and archive.is_file()
    code, err = refused("import", str(archive))  # the id is stored already: refused, with the way out
    assert code == 1 and "--skip-existing" in err
    assert refused("import", "--skip-existing", str(archive))[0] == 0
    code, err = refused("import", str(tmp_path / "absent.zip"))
    assert code == 2 and "archive" in err
    reference = next(row["id"] for row in json.loads(listed.stdout) if row["kind"] == "original")
    code, err = refused("delete", reference)
    assert code == 1 and "can't be deleted" in err
    assert refused("delete", result["id"])[0] == 0
    capsys.readouterr()
    assert cli_main(["list", "--json"]) == 0
    assert result["id"] not in [row["id"] for row in json.loads(capsys.readouterr().out)]


def test_execute_runs_a_request_and_never_changes_the_cached_references(store, digits_references, digits_scenario):
    from mucomp.execution.execute import execute
    from mucomp.runner import prepare_scenario

    state = prepare_scenario(digits_scenario, store)
    assert prepare_scenario(digits_scenario, store) is state  # once per process and scenario
    weights = {k: v.clone() for k, v in state.original.model.state_dict().items()}
    config = ExperimentConfig("digits", 3, 0, "ga", epochs=2)
    experiment_id, summary = execute(config, progress=lambda *a, **k: None, cancel=lambda: False, owner="tester",
                                     store=store)
    result = store.load(experiment_id).result
    assert result["config"]["method"] == "ga" and result["owner"] == "tester"
    assert summary["UA"] == result["metrics"]["UA"] and summary["PS"] == result["metrics"]["PS"]
    # the run unlearned a copy: the cached Original is untouched
    assert all(torch.equal(weights[k], v) for k, v in state.original.model.state_dict().items())
    with pytest.raises(ValueError, match="references given are of scenario digits-c3-s0"):
        run_experiment(ExperimentConfig("digits", 4, 0, "ga"), store, references=state)


def test_new_methods_run_end_to_end_through_the_cli(tmp_path, digits_references, monkeypatch, capsys):
    from mucomp import settings
    from mucomp.cli import main as cli_main

    home = tmp_path / "home"
    home.mkdir()
    (home / "references").symlink_to(settings.references_dir(), target_is_directory=True)
    monkeypatch.setenv("MUCOMP_HOME", str(home))
    # Two methods with the most distinct shapes (no training loop; two learnt phases): the CLI path is
    # the same for every method, and tests/test_methods.py runs each one at its defaults.
    for method in ("ssd", "unsir"):  # one store: references once
        code = cli_main(["run", "--dataset", "digits", "--forget-class", "3", "--method", method,
                         "--param", "epochs=1", "--json"])
        assert code == 0, capsys.readouterr().err
        result = json.loads(capsys.readouterr().out)
        assert result["config"]["method"] == method and result["kind"] == "unlearned", method
        assert 0.0 <= result["metrics"]["PS_exact"] <= result["metrics"]["PS"] <= 1.0, method
        assert result["metrics"]["cost"]["samples_forwarded"] > 0, method
