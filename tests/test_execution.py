"""The local backend of the job API: worker processes, progress over the channel, cancel, crashes,
and isolation between jobs (a misbehaving plugin never changes the next job's result)."""

from __future__ import annotations

import os
import shutil
import textwrap
import time

import pytest
import torch

from mucomp import settings
from mucomp.execution import (
    MAX_RUNS,
    InlineExecutor,
    LocalExecutor,
    PrepareReferences,
    QueueFullError,
    TooManyRunsError,
)
from mucomp.runner import ExperimentConfig
from mucomp.store import ExperimentStore

CLEAN = ExperimentConfig("digits", 3, 0, "ga", epochs=2)

PLUGINS = {
    "exits": """
        @register("exits", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def exits(ctx):
            raise SystemExit(0)
    """,
    "interrupts": """
        @register("interrupts", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def interrupts(ctx):
            raise KeyboardInterrupt
    """,
    "hard_exit": """
        @register("hard_exit", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def hard_exit(ctx):
            os._exit(3)
    """,
    "sleeper": """
        @register("sleeper", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def sleeper(ctx):
            time.sleep(3600)  # never polls cancel
    """,
    "no_grad": """
        @register("no_grad", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def no_grad(ctx):
            torch.set_grad_enabled(False)
            for _epoch in ctx.epochs():
                for images, labels in ctx.retain_batches():
                    ctx.step(F.cross_entropy(ctx.model(images), labels))
    """,
    "late_no_grad": """
        @register("late_no_grad", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def late_no_grad(ctx):
            for _epoch in ctx.epochs():
                for images, labels in ctx.retain_batches():
                    ctx.step(F.cross_entropy(ctx.model(images), labels))
            torch.set_grad_enabled(False)
            torch.set_num_threads(2)
    """,
    "reports_env": """
        @register("reports_env", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def reports_env(ctx):
            raise RuntimeError("mark=" + os.environ.get("MUCOMP_TEST_WORKER_MARK", "absent"))
    """,
    "writes_data": """
        @register("writes_data", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})
        def writes_data(ctx):
            ctx.split.images[:50] = 0
            ctx.split.labels[:50] = 3
    """,
}


@pytest.fixture(scope="module")
def plugin_home(tmp_path_factory, digits_references):
    """A private home with the session's digits references copied in (no training) and the
    misbehaving plugins in MUCOMP_PLUGINS."""
    home = tmp_path_factory.mktemp("exec-home")
    shutil.copytree(settings.references_dir(), home / "references")
    folder = home / "plugins"
    folder.mkdir()
    header = "import os, time\nimport torch\nimport torch.nn.functional as F\nfrom mucomp.methods import register\n"
    for name, body in PLUGINS.items():
        (folder / f"{name}.py").write_text(header + textwrap.dedent(body))
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    patch.setenv("MUCOMP_PLUGINS", str(folder))
    yield home
    from mucomp.methods import refresh_plugins

    patch.undo()
    refresh_plugins()


@pytest.fixture(scope="module")
def executor(plugin_home):
    ex = LocalExecutor(workers=1, torch_threads=1)
    assert ex.ready(timeout=180)
    yield ex
    ex.shutdown()


def run(ex, request, timeout=300) -> dict:
    [job_id] = ex.submit([request])
    assert ex.wait(timeout, [job_id]), f"{request} did not finish"
    return ex.get(job_id)


def figures_of(store: ExperimentStore, experiment_id: str) -> tuple[dict, dict]:
    """A stored result without its timings, and its weights."""
    experiment = store.load(experiment_id)
    result = dict(experiment.result)
    result["metrics"] = {k: v for k, v in result["metrics"].items() if k != "RT"}
    result["epochs"] = [{k: v for k, v in e.items() if k != "seconds"} for e in result["epochs"]]
    for key in ("id", "created_at", "timings"):
        result.pop(key, None)
    return result, experiment.state_dict()


@pytest.fixture(scope="module")
def clean(executor, plugin_home):
    job = run(executor, CLEAN)
    assert job["state"] == "completed", job["message"]
    return figures_of(ExperimentStore(plugin_home / "experiments"), job["experiment_id"])


def assert_like_clean(ex, home, clean) -> None:
    job = run(ex, CLEAN)
    assert job["state"] == "completed", job["message"]
    result, weights = figures_of(ExperimentStore(home / "experiments"), job["experiment_id"])
    assert result == clean[0]
    assert weights.keys() == clean[1].keys() and all(torch.equal(weights[k], clean[1][k]) for k in weights)


def test_runs_happen_in_a_worker_process_and_progress_comes_over_the_channel(executor, clean):
    job = run(executor, CLEAN)
    assert job["state"] == "completed"
    pid = int(job["worker"].removeprefix("pid "))
    assert pid != os.getpid() and pid in executor.worker_pids()
    assert job["figures"]["epoch"] == job["figures"]["epochs"] == 2  # the last progress message
    assert job["figures"]["forget_accuracy"] is not None and job["stage"] == "saving"
    assert job["result"]["UA"] == clean[0]["metrics"]["UA"]


@pytest.mark.parametrize("method, words", [
    ("exits", "SystemExit"),
    ("interrupts", "KeyboardInterrupt"),
    ("no_grad", "grad"),
    ("late_no_grad", "grad mode"),
    ("writes_data", "shared data"),
])
def test_a_misbehaving_method_fails_with_a_message_and_the_next_job_is_clean(
        executor, plugin_home, clean, method, words):
    before = set(os.listdir(plugin_home / "experiments"))
    job = run(executor, ExperimentConfig("digits", 3, 0, method))
    assert job["state"] == "failed" and words in job["message"], job["message"]
    assert set(os.listdir(plugin_home / "experiments")) == before  # nothing stored
    assert_like_clean(executor, plugin_home, clean)


def test_a_worker_that_exits_fails_its_job_and_is_replaced(executor, plugin_home, clean):
    restarts = executor.restarts
    job = run(executor, ExperimentConfig("digits", 3, 0, "hard_exit"))
    assert job["state"] == "failed" and "exited with code 3" in job["message"], job["message"]
    assert_like_clean(executor, plugin_home, clean)  # in the replacement worker
    assert executor.restarts == restarts + 1


def test_a_job_that_ignores_cancel_is_ended_within_five_seconds(executor, plugin_home, clean):
    [job_id] = executor.submit([ExperimentConfig("digits", 3, 0, "sleeper")])
    deadline = time.monotonic() + 120
    while executor.get(job_id)["stage"] != "unlearning":  # it is inside the method now
        assert time.monotonic() < deadline
        time.sleep(0.05)
    start = time.monotonic()
    assert executor.cancel(job_id)
    assert executor.wait(10, [job_id])
    assert time.monotonic() - start <= 5.0
    job = executor.get(job_id)
    assert job["state"] == "cancelled" and "ended" in job["message"]
    assert_like_clean(executor, plugin_home, clean)


def test_a_worker_starts_with_its_parents_environment_of_that_moment(executor, plugin_home, monkeypatch):
    """Workers fork from a server started earlier (mucomp.execution.preload): like spawned ones,
    each takes the parent's environment as it is when the worker starts, not the server's."""
    from mucomp.execution.local import _worker_context

    mark = ExperimentConfig("digits", 3, 0, "reports_env")
    assert "mark=absent" in run(executor, mark)["message"]  # started before the variable was set
    monkeypatch.setenv("MUCOMP_TEST_WORKER_MARK", "set-later")
    later = LocalExecutor(workers=1, torch_threads=1)
    try:
        assert later.ready(timeout=180)
        job = run(later, mark)
        assert job["state"] == "failed" and "mark=set-later" in job["message"], job["message"]
        if "forkserver" in __import__("multiprocessing").get_all_start_methods():
            assert _worker_context().get_start_method() == "forkserver"
            assert later.workers_started_warm() == [True]  # forked from the warmed server
    finally:
        later.shutdown()


def test_a_cooperative_run_is_cancelled_at_its_next_batch(executor, plugin_home):
    [job_id] = executor.submit([ExperimentConfig("digits", 3, 0, "ft", epochs=300)])
    deadline = time.monotonic() + 120
    while executor.get(job_id)["figures"].get("epoch") is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    restarts = executor.restarts
    start = time.monotonic()
    executor.cancel(job_id)
    assert executor.wait(10, [job_id]) and time.monotonic() - start < 5.0
    job = executor.get(job_id)
    assert job["state"] == "cancelled" and "cancelled by the user" in job["message"]
    assert executor.restarts == restarts  # the worker stopped the run itself and stays


def test_submissions_are_limited_before_any_work():
    ex = InlineExecutor(lambda request, **_: (None, {}), max_queued_per_owner=3)
    with pytest.raises(TooManyRunsError, match="--max-runs"):
        ex.submit(["x"] * (MAX_RUNS + 1))
    assert ex.jobs() == []
    ex.submit(["a", "b"], owner="me", max_runs=None)
    ex.wait(10)
    blocker = __import__("threading").Event()
    slow = InlineExecutor(lambda request, **_: blocker.wait(10) and (None, {}), max_queued_per_owner=3)
    slow.submit(["running"], owner="me")
    while slow.jobs()[0]["state"] != "running":
        time.sleep(0.01)
    slow.submit(["q1", "q2", "q3"], owner="me")
    with pytest.raises(QueueFullError, match="at most 3"):
        slow.submit(["q4"], owner="me")
    slow.submit(["other"], owner="someone else")  # per session
    blocker.set()
    assert slow.wait(10)


def test_a_reference_job_prepares_and_stores_both_references(executor, plugin_home):
    from mucomp.data import Scenario

    job = run(executor, PrepareReferences(Scenario("digits", 3, 0)))
    assert job["state"] == "completed"
    kinds = {e.kind for e in ExperimentStore(plugin_home / "experiments").list()}
    assert {"original", "retrained"} <= kinds


def _watched_child(parent_pid: int) -> None:
    from mucomp.execution.worker import _exit_with

    _exit_with(parent_pid, every_s=0.05)
    time.sleep(60)  # a long job: only the watch ends it
    os._exit(3)


def test_a_worker_ends_soon_after_its_executor_is_killed():
    """A worker forked from the fork server is not the executor's child: it watches the executor's
    process and ends when that is gone (a killed `mucomp run --workers` leaves no worker training)."""
    import multiprocessing
    import subprocess

    executor_stand_in = subprocess.Popen(["sleep", "60"])
    child = multiprocessing.get_context("fork").Process(target=_watched_child, args=(executor_stand_in.pid,))
    child.start()
    try:
        time.sleep(0.3)
        assert child.is_alive()  # it watches a living process and keeps working
        executor_stand_in.kill()
        executor_stand_in.wait()
        child.join(timeout=10)
        assert child.exitcode == 0
    finally:
        executor_stand_in.kill()
        if child.is_alive():
            child.kill()
