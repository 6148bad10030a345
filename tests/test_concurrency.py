"""Once-only work across processes: reference training and storing a reference's figures.

The subprocess tests start real processes (each imports torch: a few seconds), so they check the
cross-process file locks of :mod:`mucomp.locks`, not only the per-process thread locks.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from mucomp.data import Scenario
from mucomp.locks import locked
from mucomp.progress import RunStopped
from mucomp.references import cache_path, load_reference

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MUCOMP_HOME=str(home), HF_HUB_OFFLINE="1", MUCOMP_OFFLINE="1", MUCOMP_DEVICE="cpu")
    # One torch thread per process: on 2 busy cores, 2-thread OpenMP training was measured 4x
    # slower (three processes: 86 s against 23 s under the same load); results do not depend on it.
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("MUCOMP_REFERENCE_DIR", None)
    return env


def _communicate_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=max(deadline - time.monotonic(), 1)))
    finally:
        for proc in procs:  # only the processes this test started
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return outputs


#: `mucomp references` with the digits recipe cut to two epochs: the race is about the lock, not the
#: recipe (a full training would add ~15 s of CPU to the suite).
SHORT_RECIPE_CLI = (
    "import sys; from mucomp import recipes; "
    "recipes.RECIPES['digits'] = recipes.TrainRecipe(epochs=2, lr=0.05, batch_size=64); "
    "from mucomp.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_two_reference_processes_train_each_reference_once(tmp_path):
    command = [sys.executable, "-c", SHORT_RECIPE_CLI, "references", "--dataset", "digits", "--forget-class", "3",
               "--json"]
    env = _env(tmp_path / "home")
    # The two processes race for both references, each of which exactly one of them trains; the
    # other waits on its lock and reads the file. The timeout only stops a hung run. The lock
    # makes the result independent of how the two interleave.
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = _communicate_all(procs, timeout=300)
    sources = {"original": [], "retrained": []}
    for _out, err in outputs:
        found = dict(re.findall(r"^(original|retrained): (\w+) \(", err, flags=re.MULTILINE))
        assert set(found) == set(sources), err
        for kind, source in found.items():
            sources[kind].append(source)
    assert sorted(sources["original"]) == ["cache", "trained"]
    assert sorted(sources["retrained"]) == ["cache", "trained"]
    metrics = [json.loads(out) for out, _err in outputs]
    assert metrics[0] == metrics[1]
    assert set(metrics[0]) == {"original", "retrained"}
    cached = sorted(p.name for p in (tmp_path / "home" / "references").rglob("*") if p.is_file())
    # Both cache files and no temporary file left (lock files may stay: filelock keeps them on POSIX).
    from mucomp import settings

    # A reference thread count other than the default names its own cache files.
    suffix = "" if settings.reference_threads() == settings.REFERENCE_THREADS else f"-t{settings.reference_threads()}"
    assert [name for name in cached if not name.endswith(".lock")] == [
        f"original-s0{suffix}.safetensors", f"retrained-c3-s0{suffix}.safetensors"]


# A process that stores a reference's (faked, slow) figures through the runner once both processes
# are ready, and prints whether it computed them.
STORE_SCRIPT = r"""
import json, sys, time
from pathlib import Path
import torch
from mucomp.config import reference_experiment_id
from mucomp.data import Scenario
from mucomp.experiment import state as states
from mucomp.metrics import AVG_GAP_KEYS
from mucomp.store import ExperimentStore

root, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
computed = []

def slow_figures(evals, state, model_id=None):
    computed.append(model_id)
    time.sleep(1.0)  # long enough for the other process to reach the same step
    return {"metrics": {key: 0.25 for key in AVG_GAP_KEYS}}

states.model_figures = slow_figures
scenario = Scenario("digits", 3, 0)
ref_id = reference_experiment_id(scenario, "retrained", "test/checkpoint")
ref = states.ReferenceState("retrained", torch.nn.Linear(2, 2), "test/checkpoint", {}, ref_id)
store = ExperimentStore(root / "experiments")
(root / f"ready-{me}").touch()
deadline = time.monotonic() + 60
while not (root / f"ready-{other}").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
metrics = states._store_reference(scenario, ref, None, store, None)
print(json.dumps({"computed": len(computed), "metrics": metrics, "id": ref_id}))
"""


def test_two_processes_store_a_reference_once(tmp_path):
    env = _env(tmp_path / "home")
    procs = [
        subprocess.Popen([sys.executable, "-c", STORE_SCRIPT, str(tmp_path), me, other], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for me, other in (("a", "b"), ("b", "a"))
    ]
    reports = [json.loads(out) for out, _err in _communicate_all(procs, timeout=300)]
    assert sorted(r["computed"] for r in reports) == [0, 1]  # the second read the stored metrics
    assert reports[0]["metrics"] == reports[1]["metrics"]
    from mucomp.store import ExperimentStore

    store = ExperimentStore(tmp_path / "experiments")
    assert [e.id for e in store.list()] == [reports[0]["id"]]
    assert store.load(reports[0]["id"]).metrics == reports[0]["metrics"]


def test_waiting_for_another_process_can_be_cancelled(tmp_path):
    path = tmp_path / "locks" / "work.lock"
    path.parent.mkdir()
    rival = FileLock(str(path))  # its own FileLock object: it locks like another process would
    rival.acquire()
    try:
        start = time.perf_counter()
        asked = []

        def cancelled() -> bool:
            asked.append(1)
            return len(asked) >= 2

        with (
            pytest.raises(RunStopped, match="cancelled by the user while waiting for the test") as info,
            locked(path, cancelled=cancelled, waiting_for="the test"),
        ):
            pytest.fail("the lock is held elsewhere")
        assert info.value.status == "cancelled"
        assert 0.5 < time.perf_counter() - start < 3
    finally:
        rival.release()
    with locked(path):  # free again, and not left held by the cancelled wait
        pass


def test_waiting_for_another_thread_can_be_cancelled(tmp_path):
    path = tmp_path / "work.lock"
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with locked(path):
            inside.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RunStopped, match="cancelled"), locked(path, cancelled=lambda: True):
            pytest.fail("the lock is held by another thread")
    finally:
        leave.set()
        holder.join(10)
    with locked(path):
        pass


def test_a_reference_wait_is_cancellable():
    scenario = Scenario("digits", 3, 0)
    lock_path = cache_path(scenario, "retrained").with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    rival = FileLock(str(lock_path))
    rival.acquire()
    try:
        start = time.perf_counter()
        with pytest.raises(RunStopped, match="while waiting for another run to finish training the retrained"):
            load_reference(scenario, "retrained", source="train", cancelled=lambda: True)
        assert time.perf_counter() - start < 3
    finally:
        rival.release()
