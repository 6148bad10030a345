"""The Ray backend stores the same experiments as the local backend, bit for bit (timings aside).

A local Ray (2 CPUs) runs a 2 x 2 digits grid through :class:`RayExecutor` into one home; the
local backend runs the same configs into another; every figure and every weight must agree, and
the references must reach the driver's store. Skipped when ``ray`` is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import pytest

ray = pytest.importorskip("ray")

import torch  # noqa: E402

from mucomp import settings  # noqa: E402
from mucomp.execution.jobs import FINISHED  # noqa: E402
from mucomp.runner import ExperimentConfig, expand_grid  # noqa: E402
from mucomp.store import ExperimentStore  # noqa: E402

GRID = {"epochs": [2], "lr": [0.03, 0.05]}
TIMING_KEYS = {"RT"}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory, digits_references):
    """A local Ray of 2 CPUs for the module; tasks use a private node-local home, which starts
    with the session's trained digits references (the node's cache: no training in the tasks)."""
    node_home = tmp_path_factory.mktemp("ray-node-home")
    shutil.copytree(settings.references_dir(), node_home / "references")
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
