"""A background worker that runs queued experiments one after another.

The app submits a grid (a list of configs); the worker thread lives as long as the server process,
so a run goes on while the user changes pages or reloads the browser, and a second request waits
in the queue instead of failing. Progress is written into plain objects (no Streamlit here) that
any page can read.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

STATES = ("queued", "running", "completed", "diverged", "cancelled", "failed")
FINISHED = ("completed", "diverged", "cancelled", "failed")
#: The states an exception's ``status`` may set; any other status (even "completed": an exception
#: never brings an experiment) makes the job "failed".
STOPPED = ("diverged", "cancelled", "failed")


@dataclass
class Job:
    """One queued experiment and what is known of its progress.

    ``stage`` is the runner's current stage; ``fraction`` its completed share in [0, 1];
    ``figures`` the latest reported figures (epoch, forget accuracy, ...).
    """

    id: int
    config: object
    owner: str | None = None
    state: str = "queued"
    stage: str = ""
    fraction: float = 0.0
    figures: dict = field(default_factory=dict)
    message: str = ""
    experiment_id: str | None = None
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def snapshot(self) -> dict:
        """A copy of the job's fields safe to read from another thread."""
        return {
            "id": self.id, "config": self.config, "owner": self.owner, "state": self.state,
            "stage": self.stage, "fraction": self.fraction, "figures": dict(self.figures),
            "message": self.message, "experiment_id": self.experiment_id,
            "submitted_at": self.submitted_at, "started_at": self.started_at, "finished_at": self.finished_at,
        }


RunFn = Callable[..., object]  # run(config, progress=..., cancel=..., owner=...) -> object with .id


class JobQueue:
    """A FIFO of experiments run by one daemon thread with ``run_fn``.

    ``run_fn(config, progress=callable(stage, fraction, **figures), cancel=callable() -> bool,
    owner=the submitting session)`` returns the stored experiment (anything with an ``id``) or raises; an exception with a
    ``status`` attribute of ``"diverged"`` / ``"cancelled"`` / ``"failed"`` sets that state, any
    other exception sets ``"failed"`` with the message.
    """

    def __init__(self, run_fn: RunFn, keep_finished: int = 200) -> None:
        self._run_fn = run_fn
        self._jobs: dict[int, Job] = {}
        self._order: list[int] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # notified on a new job and on a finished one
        self._keep_finished = keep_finished
        self._thread: threading.Thread | None = None

    def submit(self, configs: list, owner: str | None = None) -> list[int]:
        """Queue ``configs`` in order; returns their job ids. Starts the worker if needed."""
        with self._lock:
            ids = []
            for config in configs:
                job = Job(next(self._ids), config, owner)
                self._jobs[job.id] = job
                self._order.append(job.id)
                ids.append(job.id)
            self._trim()
            self._ensure_thread()
            self._wake.notify_all()
        return ids

    def cancel(self, job_id: int, owner: str | None = None) -> bool:
        """Cancel a queued job at once, or a running one at its next batch. False if unknown or
        finished, or owned by another session."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finished or (owner is not None and job.owner not in (None, owner)):
                return False
            if job.state == "queued":
                job.state, job.message, job.finished_at = "cancelled", "cancelled before it started", time.time()
                self._wake.notify_all()
            else:
                job.cancel_requested = True
            return True

    def jobs(self, owner: str | None = None) -> list[dict]:
        """Snapshots of every job (of ``owner`` when given), in submission order."""
        with self._lock:
            return [self._jobs[i].snapshot() for i in self._order if owner is None or self._jobs[i].owner == owner]

    def get(self, job_id: int) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.snapshot() if job else None

    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._lock:
            return self._busy()

    def _busy(self) -> bool:  # hold the lock
        return any(not self._jobs[i].finished for i in self._order)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._busy(), timeout)

    # --- worker ------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="mucomp-jobs", daemon=True)
            self._thread.start()

    def _next(self) -> Job:
        with self._lock:
            while True:
                for job_id in self._order:
                    job = self._jobs[job_id]
                    if job.state == "queued":
                        job.state, job.started_at = "running", time.time()
                        return job
                self._wake.wait(timeout=1.0)

    def _work(self) -> None:
        while True:
            self._run(self._next())

    def _run(self, job: Job) -> None:
        def progress(stage: str, fraction: float, **figures) -> None:
            with self._lock:  # a snapshot never pairs a new stage with an old fraction
                job.stage, job.fraction = stage, float(fraction)
                job.figures.update(figures)

        def cancel() -> bool:
            return job.cancel_requested

        try:
            experiment = self._run_fn(job.config, progress=progress, cancel=cancel, owner=job.owner)
            state, message, experiment_id = "completed", "", getattr(experiment, "id", None)
        except Exception as err:  # the worker must outlive any single run
            state = getattr(err, "status", "failed")
            state = state if state in STOPPED else "failed"
            message = str(err) or type(err).__name__
            experiment_id = None
            if state == "failed":
                message = f"{message}\n{traceback.format_exc(limit=3)}" if not str(err) else message
        with self._lock:
            job.state, job.message, job.experiment_id = state, message, experiment_id
            job.finished_at = time.time()
            if state == "completed":
                job.fraction = 1.0
            self._wake.notify_all()

    def _trim(self) -> None:
        finished = [i for i in self._order if self._jobs[i].finished]
        for job_id in finished[: max(0, len(finished) - self._keep_finished)]:
            self._order.remove(job_id)
            del self._jobs[job_id]
