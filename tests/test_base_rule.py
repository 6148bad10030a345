"""One rule for the base of a run (mucomp.config.base_problem), asked by every path.

A ``random:10%`` experiment whose base was unlearned on another data seed (other forget images) is
refused with the same message by the runner, the command line, the app's job API and Ray, before
any reference is prepared.
"""

from __future__ import annotations

import pytest

from mucomp.config import ExperimentConfig, base_problem
from mucomp.models import build_model
from mucomp.store import ExperimentStore

WANTED = "belongs to scenario digits-r10p-s0-d1"


@pytest.fixture
def store_with_base(tmp_path, monkeypatch):
    """A store holding one unlearned experiment of digits / random:10% / data seed 1."""
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path))
    store = ExperimentStore()
    config = ExperimentConfig("digits", forget="random:10%", data_seed=1, method="ga").to_dict()
    base = store.save({"id": "base0001", "kind": "unlearned", "config": config,
                       "metrics": {"UA": 0.5, "RA": 0.9, "TRA": 0.9}}, build_model("digits_cnn", 10).state_dict())
    return store, base.id


def _run_from(base_id: str) -> ExperimentConfig:
    return ExperimentConfig("digits", forget="random:10%", data_seed=0, method="ga", base=base_id, epochs=1)


def test_the_rule_refuses_another_data_seed_of_a_random_set_and_accepts_the_same(store_with_base):
    store, base_id = store_with_base
    config = _run_from(base_id)
    problem = base_problem(config, base_id, store.load(base_id).config)
    assert problem is not None and WANTED in problem and "digits-r10p-s0" in problem
    same = ExperimentConfig("digits", forget="random:10%", data_seed=1, method="ga", base=base_id)
    assert base_problem(same, base_id, store.load(base_id).config) is None


def test_the_runner_refuses_it_before_preparing_references(store_with_base, monkeypatch):
    from mucomp.experiment import run as run_module
    from mucomp.runner import run_experiment

    store, base_id = store_with_base
    monkeypatch.setattr(run_module, "prepare_scenario", lambda *a, **k: pytest.fail("references were prepared"))
    with pytest.raises(ValueError, match=WANTED):
        run_experiment(_run_from(base_id), store)


def test_the_cli_refuses_it_with_the_same_message(store_with_base, capsys):
    from mucomp.cli import main

    _, base_id = store_with_base
    code = main(["run", "--forget", "random:10%", "--data-seed", "0", "--method", "ga", "--base", base_id])
    err = capsys.readouterr().err
    assert code == 2 and WANTED in err


def test_the_job_api_fails_the_job_with_the_same_message(store_with_base):
    from mucomp.execution import make_executor

    _, base_id = store_with_base
    executor = make_executor("inline")  # the app's workers carry out jobs with the same execute()
    try:
        [job_id] = executor.submit([_run_from(base_id)])
        assert executor.wait(60, [job_id])
        job = executor.get(job_id)
    finally:
        executor.shutdown()
    assert job["state"] == "failed" and WANTED in job["message"], job


def test_ray_refuses_it_on_the_driver_with_the_same_message(store_with_base):
    pytest.importorskip("ray")
    from mucomp.execution.jobs import Job
    from mucomp.execution.ray_backend import RayExecutor

    _, base_id = store_with_base
    executor = RayExecutor.__new__(RayExecutor)  # no cluster: the check runs before any task is sent
    finished = {}
    executor._finish = lambda job, state, message="", *a, **k: finished.update(state=state, message=message)
    executor._driver_store = lambda job: ExperimentStore()
    executor._dispatch(Job(1, _run_from(base_id), env={}))
    assert finished["state"] == "failed" and WANTED in finished["message"]
