"""The Ray backend stores the same experiments as the local backend, bit for bit (timings aside).

A local Ray (2 CPUs) runs a 2 x 2 digits grid through :class:`RayExecutor` into one home; the
local backend runs the same configs into another; every figure and every weight must agree, and
the references must reach the driver's store. Ensembles on Ray (below) land in the driver's home
as they do in process. Skipped when ``ray`` is not installed.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import torch  # noqa: E402

from mucomp import settings  # noqa: E402
from mucomp.data import Scenario  # noqa: E402
from mucomp.execution.jobs import FINISHED  # noqa: E402
from mucomp.experiment.ensembles import MIN_MODELS, EnsembleSpec, member_path  # noqa: E402
from mucomp.runner import ExperimentConfig, expand_grid  # noqa: E402
from mucomp.store import ExperimentStore  # noqa: E402

GRID = {"epochs": [2], "lr": [0.03, 0.05]}
TIMING_KEYS = {"RT"}


@pytest.fixture(scope="module")
def ray_node_home(tmp_path_factory, digits_references):
    """The private node-local home of the module's Ray tasks; it starts with the session's trained
    digits references (the node's cache: no training in the tasks)."""
    node_home = tmp_path_factory.mktemp("ray-node-home")
    shutil.copytree(settings.references_dir(), node_home / "references")
    return node_home


@pytest.fixture(scope="module")
def local_ray(ray_node_home):
    """A local Ray of 2 CPUs for the module (one start for every test here: it takes seconds)."""
    node_home = ray_node_home
    with pytest.MonkeyPatch.context() as patch:
        # Inherited by Ray's worker processes, started by ray.init below.
        patch.setenv("MUCOMP_RAY_HOME", str(node_home))
        patch.setenv("RAY_worker_niceness", "0")  # as RayExecutor does for a Ray it starts
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture
def ray_executor(local_ray):
    from mucomp.execution import make_executor
    from mucomp.execution.ray_backend import RayExecutor

    executor = make_executor("ray", torch_threads=1)
    assert isinstance(executor, RayExecutor) and executor.kind == "ray"
    try:
        yield executor
    finally:
        executor.shutdown()
    assert ray.is_initialized(), "an executor must not stop a Ray it did not start"


@pytest.fixture
def local_executor():
    """A factory of one :class:`LocalExecutor` (1 worker, 1 thread), started when called (so its
    warm-up does not share the cores with the Ray runs) and shut down after the test."""
    from mucomp.execution.local import LocalExecutor

    made = []

    def make() -> LocalExecutor:
        made.append(LocalExecutor(1, 1))
        return made[-1]

    try:
        yield make
    finally:
        for executor in made:
            executor.shutdown()


def _configs() -> list[ExperimentConfig]:
    return expand_grid(ExperimentConfig("digits", 3, 0, "ga"), GRID)


def _run(executor, configs, home, monkeypatch, timeout: float) -> tuple[list[dict], float]:
    """Submit ``configs`` under ``MUCOMP_HOME=home``; the finished job snapshots and the seconds."""
    monkeypatch.setenv("MUCOMP_HOME", str(home))  # jobs capture the environment at submit time
    start = time.perf_counter()
    ids = executor.submit(configs)
    assert executor.wait(timeout, ids), f"the jobs did not finish in {timeout} s: {executor.jobs()}"
    seconds = time.perf_counter() - start
    jobs = [executor.get(i) for i in ids]
    assert all(j["state"] in FINISHED for j in jobs)
    return jobs, seconds


def _comparable(result: dict) -> dict:
    """Every stored figure except timings: the metrics without RT and the epoch records without
    their seconds."""
    return {
        "config": result["config"],
        "metrics": {k: v for k, v in result["metrics"].items() if k not in TIMING_KEYS},
        "epochs": [{k: v for k, v in record.items() if k != "seconds"} for record in result.get("epochs") or []],
    }


def test_a_grid_on_ray_stores_what_the_local_backend_stores(ray_executor, local_executor, tmp_path, monkeypatch):
    configs = _configs()
    assert len(configs) == 2
    home_a, home_b = tmp_path / "ray-home", tmp_path / "local-home"
    shutil.copytree(settings.references_dir(), home_b / "references")  # the local worker's cache, as the node's

    ray_jobs, ray_seconds = _run(ray_executor, configs, home_a, monkeypatch, timeout=300)
    print(f"\nRay backend: {len(configs)} runs in {ray_seconds:.1f} s on {ray_executor.max_in_flight} task(s) at "
          "once (fresh Ray workers: imports, UMAP's compilation and the references included)")
    local = local_executor()
    assert local.ready(300)
    local_jobs, local_seconds = _run(local, configs, home_b, monkeypatch, timeout=300)
    print(f"local backend: {len(configs)} runs in {local_seconds:.1f} s (a warm worker; the references included)")

    for job in ray_jobs + local_jobs:
        assert job["state"] == "completed", job
        assert job["experiment_id"] and job["result"]
    assert all(job["worker"].startswith("ray ") for job in ray_jobs)

    store_a, store_b = ExperimentStore(home_a / "experiments"), ExperimentStore(home_b / "experiments")
    for config, ray_job, local_job in zip(configs, ray_jobs, local_jobs, strict=True):
        a, b = store_a.load(ray_job["experiment_id"]), store_b.load(local_job["experiment_id"])
        assert a.result["id"] == ray_job["experiment_id"]  # stored under the task's id
        assert a.result["config"]["epochs"] == config.epochs and a.result["config"]["lr"] == config.lr
        # The last progress reached the driver: the final epoch, and the last stage.
        assert ray_job["figures"]["epoch"] == ray_job["figures"]["epochs"] == config.epochs
        assert ray_job["stage"] == "saving" and ray_job["fraction"] == 1.0
        assert _comparable(a.result) == _comparable(b.result), f"figures differ for {config}"
        assert {k: v for k, v in ray_job["result"].items() if k != "RT"} == \
            {k: v for k, v in local_job["result"].items() if k != "RT"}
        weights_a, weights_b = a.state_dict(), b.state_dict()
        assert weights_a.keys() == weights_b.keys()
        for name in weights_a:
            assert torch.equal(weights_a[name], weights_b[name]), f"{name} differs for {config}"

    # The references reached the driver's store too, and are the local backend's.
    references_a = {e.id: e for e in store_a.list() if e.kind in ("original", "retrained")}
    references_b = {e.id: e for e in store_b.list() if e.kind in ("original", "retrained")}
    assert sorted(e.kind for e in references_a.values()) == ["original", "retrained"]
    assert references_a.keys() == references_b.keys()
    for experiment_id, reference in references_a.items():
        assert reference.metrics == references_b[experiment_id].metrics
        for name, tensor in reference.state_dict().items():
            assert torch.equal(tensor, references_b[experiment_id].state_dict()[name])
    assert len(store_a.list()) == len(store_b.list()) == len(configs) + 2

    # A run from a stored experiment: the driver sends the base along with the task.
    [ray_job], _ = _run(ray_executor, [_from(ray_jobs[0]["experiment_id"])], home_a, monkeypatch, timeout=120)
    [local_job], _ = _run(local, [_from(local_jobs[0]["experiment_id"])], home_b, monkeypatch, timeout=120)
    assert ray_job["state"] == local_job["state"] == "completed", (ray_job, local_job)
    a, b = store_a.load(ray_job["experiment_id"]), store_b.load(local_job["experiment_id"])
    assert a.config["base"] == ray_jobs[0]["experiment_id"]
    assert _comparable(a.result)["metrics"] == _comparable(b.result)["metrics"]
    assert all(torch.equal(t, b.state_dict()[k]) for k, t in a.state_dict().items())


def _from(base: str) -> ExperimentConfig:
    return ExperimentConfig("digits", 3, 0, "ga", base=base, epochs=1, lr=0.03)


def _long_run() -> ExperimentConfig:
    return ExperimentConfig("digits", 3, 0, "ft", epochs=1000)  # minutes: stopped long before the end


def _wait_for_stage(executor, job_id: int, stage: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while executor.get(job_id)["stage"] != stage:
        assert time.monotonic() < deadline, executor.get(job_id)
        assert executor.get(job_id)["state"] in ("queued", "running"), executor.get(job_id)
        time.sleep(0.1)


def test_a_cancelled_ray_job_ends_cancelled_and_stores_nothing(ray_executor, tmp_path, monkeypatch):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    [job_id] = ray_executor.submit([_long_run()])
    _wait_for_stage(ray_executor, job_id, "unlearning")
    asked = time.monotonic()
    assert ray_executor.cancel(job_id)
    assert ray_executor.wait(30, [job_id])
    job = ray_executor.get(job_id)
    assert job["state"] == "cancelled", job
    assert time.monotonic() - asked < 10
    print(f"\ncancelled in {time.monotonic() - asked:.1f} s: {job['message']}")
    stored = ExperimentStore(tmp_path / "home" / "experiments").list()
    assert all(e.kind in ("original", "retrained") for e in stored)


def test_a_ray_worker_that_dies_fails_its_job_and_the_next_job_runs(ray_executor, tmp_path, monkeypatch):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    doomed, after = ray_executor.submit([_long_run(), ExperimentConfig("digits", 3, 0, "ga", epochs=1)])
    _wait_for_stage(ray_executor, doomed, "unlearning")
    pid = int(ray_executor.get(doomed)["worker"].rsplit("pid ", 1)[1])
    os.kill(pid, signal.SIGKILL)
    assert ray_executor.wait(120, [doomed, after])
    job = ray_executor.get(doomed)
    assert job["state"] == "failed" and "died" in job["message"], job
    print(f"\nkilled worker: {job['message']}")
    assert ray_executor.get(after)["state"] == "completed", ray_executor.get(after)


def test_without_ray_the_backend_names_the_extra(monkeypatch):
    from mucomp.execution.ray_backend import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(ImportError, match=r"pip install 'mucomp\[ray\]'"):
        RayExecutor()

# ---------------------------------------------------------------------------------------------
# Ensembles on Ray: members made on the node, cached in the driver's home. The Retrained members
# of a digits ensemble at the minimum N run as member jobs, then the ensembles (its unlearned
# members made in the RunEnsemble task, which waits for the member jobs); the driver's home must
# hold every member and records equal to what the same ensemble gives in this process in another
# home (made while the Ray jobs run: the executor's thread then stores the member jobs' files while
# this process's MUCOMP_HOME names that other home, so it must use the jobs' own home). A member
# whose file comes back tampered is refused. No reference trains: the Retrained members'
# references (training seeds 1000+) are stand-ins (the session's Retrained weights, perturbed).

ENSEMBLE_N = MIN_MODELS
ENSEMBLE_CONFIG = ExperimentConfig("digits", 3, 0, "ga")  # ga at its digits defaults: about a second per member


def _stand_in_references(homes, scenario: Scenario) -> None:
    """Cache files for the Retrained references of the ensemble's training seeds in each home's
    reference cache: the session's Retrained weights with a little seeded noise (distinct models
    at the cost of a copy, not a training each)."""
    from safetensors.torch import load_file, save_file

    from mucomp.references import cache_path

    session = settings.references_dir()
    weights = load_file(str(cache_path(scenario, "retrained")))
    for k, seed in enumerate(EnsembleSpec(ENSEMBLE_CONFIG, "retrained").member_seeds(ENSEMBLE_N)):
        noise = torch.Generator().manual_seed(k)
        state = {name: t + 0.01 * torch.randn(t.shape, generator=noise)
                 if t.is_floating_point() and "running" not in name else t for name, t in weights.items()}
        relative = cache_path(Scenario("digits", 3, seed), "retrained").relative_to(session)
        for home in homes:
            (home / "references" / relative).parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(home / "references" / relative))


@pytest.fixture(scope="module")
def ensemble_homes(tmp_path_factory, digits_scenario, ray_node_home, local_ray):
    """The Ray node's home and a home for the in-process ensemble, both with the stand-in
    Retrained references of the ensemble's training seeds."""
    inline = tmp_path_factory.mktemp("inline-ensemble-home")
    shutil.copytree(settings.references_dir(), inline / "references")
    _stand_in_references([ray_node_home, inline], digits_scenario)
    return {"node": ray_node_home, "inline": inline}


def _inline_records(home, monkeypatch) -> dict:
    """The same ensemble made in this process under ``home``, with the tasks' one torch thread."""
    from mucomp.experiment.ensembles import run_ensemble

    threads = torch.get_num_threads()
    with monkeypatch.context() as patch:
        patch.setenv("MUCOMP_HOME", str(home))
        torch.set_num_threads(1)
        try:
            return run_ensemble(ENSEMBLE_CONFIG, ENSEMBLE_N)
        finally:
            torch.set_num_threads(threads)


def _submit(executor, requests, home, monkeypatch) -> list[int]:
    monkeypatch.setenv("MUCOMP_HOME", str(home))  # jobs capture the environment at submit time
    return executor.submit(requests)


def _wait(executor, ids: list[int], timeout: float = 240) -> list[dict]:
    assert executor.wait(timeout, ids), f"the jobs did not finish in {timeout} s: {executor.jobs()}"
    return [executor.get(i) for i in ids]


def test_an_ensemble_on_ray_lands_in_the_drivers_home_as_it_does_in_process(ray_executor, ensemble_homes, tmp_path,
                                                                             monkeypatch):
    from mucomp.execution import MakeEnsembleMember, RunEnsemble
    from mucomp.store.ensembles import load_ensemble_results, results_dir

    driver = tmp_path / "driver-home"
    specs = {kind: EnsembleSpec(ENSEMBLE_CONFIG, kind) for kind in ("retrained", "unlearned")}
    # The Retrained members as member jobs; the unlearned ones are left to the RunEnsemble task,
    # which must wait for the member jobs (or its node would make and send the Retrained ones too).
    requests = [MakeEnsembleMember(specs["retrained"], s) for s in specs["retrained"].member_seeds(ENSEMBLE_N)]
    requests.append(RunEnsemble(ENSEMBLE_CONFIG, ENSEMBLE_N, started_at=time.time()))
    start = time.perf_counter()
    ids = _submit(ray_executor, requests, driver, monkeypatch)
    # The same ensemble in this process meanwhile (the Ray workers spend their first seconds on imports).
    inline = _inline_records(ensemble_homes["inline"], monkeypatch)
    print(f"\nthe same ensemble in this process: {time.perf_counter() - start:.1f} s")
    jobs = _wait(ray_executor, ids)
    spans = ", ".join(f"{j['finished_at'] - j['submitted_at']:.1f}" for j in jobs)
    print(f"{len(jobs)} ensemble jobs on Ray in {time.perf_counter() - start:.1f} s (each done after: {spans} s)")
    assert [j["state"] for j in jobs] == ["completed"] * len(jobs), [j["message"] for j in jobs]
    assert all(j["worker"].startswith("ray ") for j in jobs)
    assert [j["result"]["members_from_node"] for j in jobs] == [1] * ENSEMBLE_N + [ENSEMBLE_N]  # the unlearned N only
    final = jobs[-1]["result"]
    assert final["n_models"] == ENSEMBLE_N and final["key"] == specs["unlearned"].record_key()

    for spec in specs.values():  # every member in the driver's home (and the node's cache)
        for seed in spec.member_seeds(ENSEMBLE_N):
            assert member_path(spec, seed, driver).is_file() and member_path(spec, seed, ensemble_homes["node"]).is_file()
    assert not results_dir(ensemble_homes["node"]).exists()  # the node stores no records

    stored, problems = load_ensemble_results(driver)
    assert problems == []
    ray_records = {r.kind: r for r in stored}
    assert ray_records.keys() == {"unlearned", "retrained"}
    for kind, record in inline.items():
        theirs = ray_records[kind]
        assert (theirs.key, theirs.unlearn_seeds, theirs.retrained_seeds) == \
            (record.key, record.unlearn_seeds, record.retrained_seeds)
        assert theirs.forget_quality == record.forget_quality and theirs.score == record.score
        assert theirs.klom == record.klom and theirs.klom_p95 == record.klom_p95
        assert theirs.epsilons == record.epsilons and theirs.confidences == record.confidences
    assert ray_records["unlearned"].seconds >= 0


def _tampered(data: bytes) -> bytes:
    """A member file whose forget indices are not the scenario's."""
    with np.load(io.BytesIO(data)) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["forget_indices"] = arrays["forget_indices"] + 1
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_a_tampered_member_from_ray_is_refused_and_nothing_stored(ray_executor, ensemble_homes, tmp_path, monkeypatch):
    from mucomp.execution import MakeEnsembleMember, ray_ensembles

    store = ray_ensembles.store_outcome

    def tampering(request, payload, home):
        for item in payload["members"]:
            item["data"] = _tampered(item["data"])
        return store(request, payload, home)

    monkeypatch.setattr(ray_ensembles, "store_outcome", tampering)  # what the driver receives
    driver = tmp_path / "driver-home"
    spec = EnsembleSpec(ENSEMBLE_CONFIG, "unlearned")
    [job] = _wait(ray_executor, _submit(ray_executor, [MakeEnsembleMember(spec, 0)], driver, monkeypatch))
    assert job["state"] == "failed", job
    assert "refused" in job["message"] and "forget indices" in job["message"], job["message"]
    print(f"\n{job['message']}")
    folder = member_path(spec, 0, driver).parent
    assert not folder.exists() or not [p for p in folder.iterdir() if p.suffix == ".npz"]  # no temporary left
