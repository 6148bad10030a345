"""The task side of the Ray backend: what one remote task does on its node (prepare the
scenario's references once per node, run the job under the node's own ``MUCOMP_HOME``, pack the
stored results for the driver), its progress reports and its cancel watch.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mucomp.execution.ray_ensembles import ENSEMBLE_REQUESTS
from mucomp.execution.ray_ensembles import node_work as node_ensemble_work
from mucomp.execution.requests import request_scenario

#: The least seconds between two progress messages of a task (a new stage is always sent).
PROGRESS_INTERVAL_S = 0.1
#: Seconds between two looks of a task at the control actor for a cancel.
CANCEL_POLL_S = 0.2


def node_home() -> Path:
    """The node-local ``MUCOMP_HOME`` of Ray tasks on this machine: ``$MUCOMP_RAY_HOME``, else
    ``<tmp>/mucomp-ray-<uid>/home``."""
    configured = os.environ.get("MUCOMP_RAY_HOME", "").strip()
    if configured:
        return Path(configured).expanduser()
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"mucomp-ray-{uid}" / "home"


def home_of(env: dict[str, str | None]) -> Path:
    """The ``MUCOMP_HOME`` a job was submitted under (as :func:`mucomp.settings.home` reads it)."""
    value = env.get("MUCOMP_HOME")
    return Path(value if value is not None else "runs").expanduser()


def pack_experiment(experiment) -> dict[str, Any]:
    """A stored experiment as plain data: its result and its weights file's bytes (or None)."""
    path = experiment.model_path
    return {"result": experiment.result, "weights": path.read_bytes() if path.is_file() else None}


def save_packed(store, packed: dict[str, Any], *, keep_existing: bool) -> str:
    """Save a packed experiment in ``store`` under its own id; returns the id it is stored under.

    ``keep_existing``: an experiment of that id already stored is kept as it is (references, bases);
    otherwise a clash with an unrelated experiment (ids are drawn on another node) stores it under
    a new id.
    """
    from safetensors.torch import load as load_weights

    from mucomp.store import ExperimentExistsError

    result = dict(packed["result"])
    weights = load_weights(packed["weights"]) if packed.get("weights") is not None else None
    while True:
        if store.exists(result["id"]):
            if keep_existing:
                return result["id"]
            result["id"] = store.new_id()
        try:
            return store.save(result, weights).id
        except ExperimentExistsError:
            continue  # stored meanwhile by another process: look again


def ensure_base(store, base: dict[str, Any]) -> None:
    """Put the driver's base experiment into the node's store (a copy of another experiment under
    the same id, left by another driver, is replaced)."""
    from mucomp.store import StoreError

    experiment_id = base["result"]["id"]
    if store.exists(experiment_id):
        try:
            same = store.load(experiment_id).result == base["result"]
        except StoreError:
            same = False
        if same:
            return
        with contextlib.suppress(StoreError):
            store.delete(experiment_id)
    save_packed(store, base, keep_existing=True)  # one stored meanwhile by another task is kept


class _Progress:
    """The task's ``progress(stage, fraction, **figures)``: fire-and-forget calls to the control
    actor, at most one per :data:`PROGRESS_INTERVAL_S` (figures of skipped calls are merged into
    the next one; a new stage or a finished one is always sent)."""

    def __init__(self, control, job_id: int) -> None:
        self._control, self._job_id = control, job_id
        self._stage: str | None = None
        self._fraction = 0.0
        self._figures: dict = {}
        self._sent_stage: str | None = None
        self._sent_at = 0.0
        self._dirty = False
        #: ``(stage, fraction, figures)`` of the last report, with every figure reported so far:
        #: returned with the outcome, so a job's last snapshot never depends on message timing.
        self.final: tuple[str, float, dict] | None = None

    def __call__(self, stage: str, fraction: float, **figures) -> None:
        self._stage, self._fraction = stage, float(fraction)
        self._figures.update(figures)
        self.final = (stage, self._fraction, {**(self.final[2] if self.final else {}), **figures})
        self._dirty = True
        now = time.monotonic()
        if stage != self._sent_stage or self._fraction >= 1.0 or now - self._sent_at >= PROGRESS_INTERVAL_S:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if not self._dirty:
            return
        with contextlib.suppress(Exception):  # progress must never fail a run
            self._control.report.remote(self._job_id, self._stage, self._fraction, self._figures)
        self._sent_stage, self._sent_at = self._stage, now if now is not None else time.monotonic()
        self._figures, self._dirty = {}, False


class _CancelWatch:
    """A thread of the task that asks the control actor for a cancel every
    :data:`CANCEL_POLL_S`; the run's ``cancel()`` callback is the event's ``is_set`` (cheap, polled
    before every batch)."""

    def __init__(self, control, job_id: int) -> None:
        import ray

        self._ray, self._control, self._job_id = ray, control, job_id
        self.event = threading.Event()
        self._stop = threading.Event()
        self._look()
        self._thread = threading.Thread(target=self._watch, name=f"mucomp-cancel-{job_id}", daemon=True)
        self._thread.start()

    def _look(self) -> None:
        with contextlib.suppress(Exception):
            if self._ray.get(self._control.is_cancelled.remote(self._job_id), timeout=10):
                self.event.set()

    def _watch(self) -> None:
        while not self.event.is_set() and not self._stop.wait(CANCEL_POLL_S):
            self._look()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


def _prepare_on_node(store: Any, home: Path, scenario: Any, progress: Any, cancelled: Any) -> list[str]:
    """Once per node and scenario: the first task trains (or downloads) and stores the references;
    the others wait for it, then load them from the node's cache. Returns the references' ids."""
    from mucomp.experiment import prepare_scenario
    from mucomp.locks import locked

    lock = home / ".locks" / f"prepare-{scenario.key}.lock"
    with locked(lock, cancelled=cancelled, waiting_for="another task to prepare the references"):
        prepared = prepare_scenario(scenario, store, progress=progress, cancel=cancelled)
    return [prepared.original.experiment_id, prepared.retrained.experiment_id]


def _node_work(request: Any, owner: str | None, env: dict, origin: str | None, base: dict | None, home: Path,
               progress: Any, cancelled: Any, packed: list[dict]) -> tuple[str | None, dict]:
    """The job itself on the node: its references prepared, the request executed; the run and the
    references are appended to ``packed`` for the driver (the run first)."""
    from mucomp.execution.execute import execute
    from mucomp.execution.requests import ensure_method, job_environment_applied
    from mucomp.store import ExperimentStore, StoreError

    with job_environment_applied(env):
        store = ExperimentStore(home / "experiments")
        ensure_method(origin)
        if base is not None:
            ensure_base(store, base)
        scenario = request_scenario(request)
        if scenario is None:
            raise TypeError(f"a job cannot run a {type(request).__name__}")
        references = _prepare_on_node(store, home, scenario, progress, cancelled)
        for experiment_id in references:
            with contextlib.suppress(StoreError):
                packed.append(pack_experiment(store.load(experiment_id)))
        experiment_id, summary = execute(request, progress=progress, cancel=cancelled, owner=owner, store=store)
        if experiment_id is not None and experiment_id not in references:
            packed.insert(0, pack_experiment(store.load(experiment_id)))
            with contextlib.suppress(StoreError):
                store.delete(experiment_id)  # the driver keeps it; the node keeps only references
        return experiment_id, summary


def run_job(job_id: int, request: Any, owner: str | None, env: dict[str, str | None], origin: str | None,
            torch_threads: int, base: dict[str, Any] | None, control, members: list | None = None) -> dict[str, Any]:
    """One job in a Ray worker (the remote task's body); returns its outcome as plain data.

    ``env``: the job's environment; its ``MUCOMP_HOME`` is replaced by :func:`node_home` here;
    ``base``: the packed base experiment of a run from a stored experiment; ``members``: the
    driver's cached member files sent with an ensemble job
    (:mod:`mucomp.execution.ray_ensembles`). Returns ``state``, ``message``, ``experiment_id``,
    ``summary``, ``worker``, ``experiments`` (the packed run and the scenario's references, for the
    driver to store) and ``ensemble`` (an ensemble job's members and records, else None).
    """
    import socket

    import ray
    import torch

    from mucomp.embedding import warm_up
    from mucomp.execution.jobs import carry_out
    from mucomp.experiment import reload_tainted_data
    from mucomp.methods.guard import restore_torch_state, torch_state

    try:
        node = ray.get_runtime_context().get_node_id()[:8]
    except Exception:
        node = socket.gethostname()
    where = f"ray {socket.gethostname()} (node {node}) pid {os.getpid()}"
    with contextlib.suppress(Exception):
        control.started.remote(job_id, where)
    torch.set_num_threads(max(1, int(torch_threads)))
    baseline = torch_state()
    ensemble = isinstance(request, ENSEMBLE_REQUESTS)
    if not ensemble:  # ensembles embed nothing
        warm_up(background=True)  # UMAP's compilation (the runner waits for it before the unlearning clock starts)
    progress = _Progress(control, job_id)
    watch = _CancelWatch(control, job_id)
    home = node_home()
    env = {**env, "MUCOMP_HOME": str(home)}
    if not env.get("MUCOMP_DEVICE") and not ray.get_gpu_ids() and torch.cuda.is_available():
        env["MUCOMP_DEVICE"] = "cpu"  # a task given no GPU must not take one of the node's
    packed: list[dict] = []
    returned: dict = {}
    if ensemble:
        def work():
            return node_ensemble_work(request, env, origin, members, progress, watch.event.is_set, returned)
    else:
        def work():
            return _node_work(request, owner, env, origin, base, home, progress, watch.event.is_set, packed)
    try:
        # KeyboardInterrupt is Ray's own cancellation: let it through.
        outcome = carry_out(work, let_through=(KeyboardInterrupt,))
    finally:
        watch.stop()
        progress.flush()
        restore_torch_state(baseline)
        reload_tainted_data()
    if outcome.state != "completed":  # the references prepared on the way still go to the driver
        packed = [p for p in packed if p["result"].get("kind") in ("original", "retrained")]
    return {"state": outcome.state, "message": outcome.message, "experiment_id": outcome.experiment_id,
            "summary": outcome.summary, "worker": where, "experiments": packed, "progress": progress.final,
            "ensemble": returned if ensemble and outcome.state == "completed" else None}
