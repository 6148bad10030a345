"""The Ray backend: one Ray task per job on a local or remote Ray cluster.

Each job runs as one remote task (:func:`mucomp.execution.ray_tasks._run_job`) in a Ray worker process, with
``torch_threads`` CPUs (and one GPU when the job runs on CUDA). Workers need no shared disk: a task
runs under a *node-local* ``MUCOMP_HOME`` (``$MUCOMP_RAY_HOME`` on the node, default
``<tmp>/mucomp-ray-<uid>/home``) where the scenario's references are trained or downloaded once
per node and kept, and stores its experiment in that node's store. It then returns the stored
``result.json`` and weights, with the scenario's two references, to the driver, which saves them
in *its* store under the same ids (references only when not stored yet), exactly as the local
backend would have stored them.

- Progress: tasks report to a small control actor (fire-and-forget calls, throttled; the actor
  keeps only the latest stage and fraction per job, figures merged), which a driver thread drains.
- Cancel: the control actor tells the task (its ``cancel()`` callback turns True before the next
  batch); :data:`INTERRUPT_AFTER_S` seconds later the task is cancelled through Ray
  (``ray.cancel``: a KeyboardInterrupt, or dropped before it starts), and after
  :data:`CANCEL_GRACE_S` seconds its worker is killed (``force=True``). The job ends "cancelled".
- A task whose worker died (a crash, the OOM killer, a lost node) fails its job with the reason;
  Ray never retries a job.
- Ensembles (:mod:`mucomp.execution.ray_ensembles`): a member job makes its member on a node and
  returns the file, a RunEnsemble job is held until no member job of its ensembles is queued or
  running, then sent the driver's cached members and returns the records and the members it made;
  the driver checks both and stores them under the job's home. Audits stay refused.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from mucomp.config import base_problem
from mucomp.execution import ray_ensembles
from mucomp.execution.jobs import Executor, Job, job_environment, outcome_state
from mucomp.execution.ray_tasks import home_of, pack_experiment, run_job, save_packed
from mucomp.execution.requests import method_origin

#: Seconds a running job has to stop after a cancel before its Ray worker is killed.
CANCEL_GRACE_S = 3.0
#: Seconds after a cancel before the task is also cancelled through Ray (a KeyboardInterrupt in a
#: task that has not stopped at a batch boundary, or the task dropped if it has not started).
INTERRUPT_AFTER_S = 1.0
_LOOP_S = 0.1
#: Ray starts its workers at niceness 15; a run's RT would then stretch whenever anything else
#: needs the node's CPUs (measured: a 2 x 2 digits grid did not finish in 300 s beside two busy
#: loops). A Ray this executor starts runs its workers at this niceness instead (``RAY_worker_niceness``
#: in the environment wins; for ``ray start`` clusters set that variable on every node).
WORKER_NICENESS = 0
_MISSING_RAY = "the Ray backend needs the extra: pip install 'mucomp[ray]'"


@contextlib.contextmanager
def _worker_niceness(niceness: int):
    """``RAY_worker_niceness`` for the raylet that ``ray.init`` starts (unless already set)."""
    key = "RAY_worker_niceness"
    had = key in os.environ
    os.environ.setdefault(key, str(int(niceness)))
    try:
        yield
    finally:
        if not had:
            os.environ.pop(key, None)


def _import_ray():
    """The ``ray`` module, or an ImportError saying which extra to install."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(_MISSING_RAY) from err
    return ray


def _wants_gpu(env: dict[str, str | None]) -> bool:
    """Whether a job submitted under ``env`` runs on CUDA (the driver's device choice)."""
    import torch

    requested = (env.get("MUCOMP_DEVICE") or "").strip()
    if requested:
        try:
            return torch.device(requested).type == "cuda"
        except RuntimeError:
            return False  # the task reports the bad setting
    return torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------
# The driver side


def _control_class() -> type:
    """The class of the executor's control actor: progress from the tasks, cancels to them.

    Made inside a function so that cloudpickle ships it by value: the actor's process then never
    imports mucomp (and torch with it), which saves it seconds and hundreds of MB.
    """

    class Control:
        def __init__(self) -> None:
            self._latest: dict[int, list] = {}
            self._where: dict[int, str] = {}
            self._cancelled: set[int] = set()

        def report(self, job_id: int, stage: str, fraction: float, figures: dict) -> None:
            """Keep the latest stage and fraction of a job; figures are merged."""
            entry = self._latest.get(job_id)
            if entry is None:
                self._latest[job_id] = [stage, fraction, dict(figures)]
            else:
                entry[0], entry[1] = stage, fraction
                entry[2].update(figures)

        def started(self, job_id: int, where: str) -> None:
            self._where[job_id] = where

        def drain(self) -> tuple[dict[int, list], dict[int, str]]:
            """What arrived since the last drain: ``({job: [stage, fraction, figures]}, {job: where})``."""
            latest, where = self._latest, self._where
            self._latest, self._where = {}, {}
            return latest, where

        def cancel(self, job_id: int) -> None:
            self._cancelled.add(job_id)

        def is_cancelled(self, job_id: int) -> bool:
            return job_id in self._cancelled

        def forget(self, job_id: int) -> None:
            self._cancelled.discard(job_id)
            self._latest.pop(job_id, None)
            self._where.pop(job_id, None)

    return Control


class _InFlight:
    """A job's Ray task as the driver follows it."""

    def __init__(self, job: Job, ref) -> None:
        self.job, self.ref = job, ref
        self.cancel_sent: float | None = None
        self.interrupted = False


class RayExecutor(Executor):
    """Jobs as Ray tasks, ``torch_threads`` CPUs each, up to ``max_in_flight`` at once (default:
    the cluster's CPUs // ``torch_threads``, and no more than its GPUs allow when the tasks take
    GPUs), started in submission order.

    ``address``: the Ray cluster (``None``: an existing ``ray.init`` of this process, else a new
    local Ray); ``num_gpus``: GPUs per task (default 1 when jobs run on CUDA, else 0);
    ``init_kwargs``: more arguments for ``ray.init`` (e.g. a ``runtime_env`` that ships the code
    to a remote cluster); ``store``: where results are stored (default: the store of the
    ``MUCOMP_HOME`` each job was submitted under, as with the local backend; ensemble members and
    records always go to that home).
    """

    kind = "ray"

    def __init__(self, address: str | None = None, torch_threads: int = 1, num_gpus: float | None = None,
                 init_kwargs: dict | None = None, store=None, *, max_in_flight: int | None = None,
                 **executor_kwargs) -> None:
        ray = _import_ray()
        super().__init__(**executor_kwargs)
        if int(torch_threads) < 1:
            raise ValueError(f"torch_threads must be at least 1, got {torch_threads}")
        self._ray = ray
        self.torch_threads = int(torch_threads)
        self.num_gpus = num_gpus
        self._store = store
        self._stores: dict[Path, Any] = {}
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            options = {"include_dashboard": False, "ignore_reinit_error": True, **(init_kwargs or {})}
            with _worker_niceness(WORKER_NICENESS):
                ray.init(address=address, **options)
        if max_in_flight is None:
            resources = ray.cluster_resources()
            max_in_flight = int(resources.get("CPU", 1)) // self.torch_threads
            gpus = self.num_gpus if self.num_gpus is not None else (1 if _wants_gpu(job_environment()) else 0)
            if gpus and resources.get("GPU"):
                max_in_flight = min(max_in_flight, int(resources["GPU"] // gpus))
        self.max_in_flight = max(1, int(max_in_flight))
        self._task = ray.remote(max_retries=0)(run_job)
        self._control = ray.remote(num_cpus=0)(_control_class()).remote()
        self._in_flight: dict[int, _InFlight] = {}
        #: Ensemble jobs taken but held until no member job of their ensembles is queued or running.
        self._held: list[Job] = []
        self._keys: dict[int, frozenset[str]] = {}  # the ensemble cache keys of ensemble jobs
        self._thread: threading.Thread | None = None
        self._start()

    # --- dispatching -------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._serve, name="mucomp-ray", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        """The driver thread: start tasks, forward progress and cancels, collect outcomes."""
        while not self._closed:
            try:
                self._step()
            except Exception:  # the dispatcher must outlive any one problem (e.g. a lost cluster)
                traceback.print_exc()
                time.sleep(1.0)

    def _step(self) -> None:
        ray = self._ray
        self._release_held()
        while len(self._in_flight) < self.max_in_flight:
            job = self._take(timeout=0.0 if self._in_flight or self._held else 0.5, worker="ray")
            if job is None:
                break
            if self._must_wait(job):
                self._held.append(job)
                self._report(job, "waiting", 0.0, {})
                continue
            self._dispatch(job)
        if not self._in_flight:
            if self._held:
                time.sleep(_LOOP_S)  # held jobs are looked at again without a busy loop
            return
        refs = [task.ref for task in self._in_flight.values()]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=_LOOP_S, fetch_local=False)
        self._forward_progress()
        done = set(done)
        for task in list(self._in_flight.values()):
            if task.ref in done:
                self._collect(task)
            else:
                self._follow_cancel(task)

    def _ensemble_keys(self, job: Job) -> frozenset[str]:
        keys = self._keys.get(job.id)
        if keys is None:
            try:
                keys = ray_ensembles.ensemble_keys(job.config)
            except Exception:  # e.g. a method not registered here: the job fails when it is sent
                keys = frozenset()
            self._keys[job.id] = keys
        return keys

    def _must_wait(self, job: Job) -> bool:
        """Whether ``job`` is a RunEnsemble whose members a MakeEnsembleMember job of this executor
        still makes (queued or running): it is sent once they are in the driver's home."""
        from mucomp.execution.requests import MakeEnsembleMember, RunEnsemble

        if not isinstance(job.config, RunEnsemble):
            return False
        with self._lock:
            pending = [j for j in self._jobs.values() if not j.finished and isinstance(j.config, MakeEnsembleMember)]
            stale = [i for i in self._keys if i not in self._jobs or self._jobs[i].finished]
        for job_id in stale:
            self._keys.pop(job_id, None)
        keys = self._ensemble_keys(job)
        return any(self._ensemble_keys(other) & keys for other in pending)

    def _release_held(self) -> None:
        """Send the held ensemble jobs whose members are made (a cancelled one ends at once)."""
        for job in list(self._held):
            if job.finished or self._cancel_requested(job):
                self._held.remove(job)
                self._finish(job, "cancelled", "cancelled before it started")
            elif len(self._in_flight) < self.max_in_flight and not self._must_wait(job):
                self._held.remove(job)
                self._dispatch(job)

    def _driver_store(self, job: Job):
        """The store a job's results go to."""
        if self._store is not None:
            return self._store
        from mucomp.store import ExperimentStore

        root = (home_of(job.env) / "experiments").absolute()
        store = self._stores.get(root)
        if store is None:
            store = self._stores[root] = ExperimentStore(root)
        return store

    def _dispatch(self, job: Job) -> None:
        """Start ``job``'s task (or fail it when it cannot be sent)."""
        from mucomp.execution.requests import MakeShadowPair, RunAudit

        if isinstance(job.config, (RunAudit, MakeShadowPair)):  # they update the driver's store in place
            self._finish(job, "failed", "audits run on local workers or in this process, not on Ray: use "
                                        "`mucomp audit ID --ulira --workers N`")
            return
        try:
            config = job.config
            base, members = None, None
            base_id = getattr(config, "base", "original")
            if isinstance(base_id, str) and base_id != "original":
                stored = self._driver_store(job).load(base_id)
                problem = base_problem(config, base_id, stored.config)  # the runner's rule, before any work
                if problem is not None:
                    self._finish(job, "failed", problem)
                    return
                base = pack_experiment(stored)
            env = dict(job.env)
            if isinstance(config, ray_ensembles.ENSEMBLE_REQUESTS):  # members made on the node, cached here
                env = ray_ensembles.task_environment(env)
                members = ray_ensembles.driver_members(config, home_of(job.env))
            env["MUCOMP_HOME"] = None  # the task runs under its node's home (node_home), not the driver's
            gpus = self.num_gpus if self.num_gpus is not None else (1 if _wants_gpu(job.env) else 0)
            task = self._task.options(num_cpus=self.torch_threads, num_gpus=gpus, name=f"mucomp-job-{job.id}")
            ref = task.remote(job.id, config, job.owner, env, method_origin(config), self.torch_threads, base,
                              self._control, members)
        except Exception as err:  # e.g. an unknown base, or a request that cannot be pickled
            self._finish(job, "failed", f"the job could not be sent to Ray: {type(err).__name__}: {err}")
            return
        self._in_flight[job.id] = _InFlight(job, ref)

    def _forward_progress(self) -> None:
        try:
            latest, where = self._ray.get(self._control.drain.remote(), timeout=10)
        except Exception:
            return
        for job_id, text in where.items():
            task = self._in_flight.get(job_id)
            if task is not None:
                with self._lock:
                    task.job.worker = text
        for job_id, (stage, fraction, figures) in latest.items():
            task = self._in_flight.get(job_id)
            if task is not None:
                self._report(task.job, stage, fraction, figures)

    def _follow_cancel(self, task: _InFlight) -> None:
        """Cooperative cancel at once, then ray.cancel, then the worker killed after the grace."""
        ray = self._ray
        if task.cancel_sent is None:
            if self._cancel_requested(task.job):
                task.cancel_sent = time.monotonic()
                with contextlib.suppress(Exception):
                    self._control.cancel.remote(task.job.id)
            return
        waited = time.monotonic() - task.cancel_sent
        if not task.interrupted and waited > INTERRUPT_AFTER_S:
            task.interrupted = True
            with contextlib.suppress(Exception):
                ray.cancel(task.ref)
        if waited > CANCEL_GRACE_S:
            with contextlib.suppress(Exception):
                ray.cancel(task.ref, force=True)
            self._done(task)
            self._finish(task.job, "cancelled", f"cancelled: the job did not stop within {CANCEL_GRACE_S:g} s of "
                                                "the request, so its Ray worker was ended; nothing was stored")

    def _done(self, task: _InFlight) -> None:
        self._in_flight.pop(task.job.id, None)
        with contextlib.suppress(Exception):
            self._control.forget.remote(task.job.id)

    def _collect(self, task: _InFlight) -> None:
        """Store a finished task's experiments in the driver's store and finish its job."""
        ray = self._ray
        job = task.job
        self._done(task)
        cancelled = task.cancel_sent is not None
        try:
            outcome = ray.get(task.ref, timeout=60)
        except ray.exceptions.TaskCancelledError:
            self._finish(job, "cancelled", "cancelled by the user; nothing was stored")
            return
        except Exception as err:
            state, text = _task_error(ray, err)
            self._finish(job, "cancelled" if cancelled else state, text)
            return
        with self._lock:
            job.worker = outcome.get("worker") or job.worker
        if outcome.get("progress"):
            self._report(job, *outcome["progress"])
        state, text = outcome["state"], outcome["message"]
        experiment_id = outcome["experiment_id"]
        summary = outcome["summary"]
        if state == "completed" and isinstance(job.config, ray_ensembles.ENSEMBLE_REQUESTS):
            summary = self._store_ensemble(job, outcome)
            if summary is None:
                return
        store = self._driver_store(job)
        try:
            for packed in outcome["experiments"]:
                kind = packed["result"].get("kind")
                keep = kind in ("original", "retrained")
                stored = save_packed(store, packed, keep_existing=keep)
                if not keep and packed["result"]["id"] == experiment_id:
                    experiment_id = stored
        except Exception as err:
            self._finish(job, "failed", f"the job ran, but its result could not be stored in {store.root}: "
                                        f"{type(err).__name__}: {err}")
            return
        if cancelled and state == "failed":
            state = "cancelled"  # a stop forced by the cancel is the cancel
        self._finish(job, state, text, experiment_id if state == "completed" else None,
                     summary if state == "completed" else None)

    def _store_ensemble(self, job: Job, outcome: dict) -> dict | None:
        """Store what an ensemble task returned under the job's home; the job's summary, or None
        when it was refused (the job is then failed)."""
        home = home_of(job.env)
        try:
            figures = ray_ensembles.store_outcome(job.config, outcome.get("ensemble"), home)
        except ray_ensembles.EnsembleTransferError as err:
            self._finish(job, "failed", f"the job ran, but what its Ray task returned was refused; nothing was "
                                        f"stored: {err}")
            return None
        except Exception as err:
            self._finish(job, "failed", f"the job ran, but its models could not be stored in {home}: "
                                        f"{type(err).__name__}: {err}")
            return None
        return {**(outcome["summary"] or {}), **figures}

    # --- stopping ----------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop dispatching, end the running tasks (their jobs end "cancelled"), and stop Ray when
        this executor started it."""
        super().shutdown()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)
        ray = self._ray
        for task in list(self._in_flight.values()):
            with contextlib.suppress(Exception):
                ray.cancel(task.ref, force=True)
            self._in_flight.pop(task.job.id, None)
            self._finish(task.job, "cancelled", "cancelled: the executor was shut down; nothing was stored")
        held, self._held = self._held, []
        for job in held:
            self._finish(job, "cancelled", "cancelled before it started: the executor was shut down")
        with self._lock:
            queued = [self._jobs[i] for i in self._order if self._jobs[i].state == "queued"]
        for job in queued:
            self._finish(job, "cancelled", "cancelled before it started: the executor was shut down")
        with contextlib.suppress(Exception):
            ray.kill(self._control)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False


def _task_error(ray, err: BaseException) -> tuple[str, str]:
    """The job state and a readable message for a task that raised instead of returning."""
    exceptions = ray.exceptions
    if isinstance(err, exceptions.OutOfMemoryError):
        return "failed", ("the Ray worker running the job was killed for lack of memory; nothing was stored. "
                          "Give the tasks more memory or run fewer at once")
    if isinstance(err, exceptions.WorkerCrashedError):
        return "failed", ("the Ray worker running the job died (a crash in native code, os._exit, or killed by "
                          "another process); nothing was stored")
    if isinstance(err, exceptions.NodeDiedError):
        return "failed", "the Ray node running the job went away; nothing was stored"
    if isinstance(err, exceptions.RayTaskError):
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            return outcome_state(cause)
    text = str(err).strip().splitlines()
    return "failed", f"the Ray task failed: {type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
