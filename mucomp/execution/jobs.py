"""Job bookkeeping shared by every backend: states, the queue, progress snapshots, cancel, wait.

A backend (:mod:`~mucomp.execution.inline`, :mod:`~mucomp.execution.local`,
:mod:`~mucomp.execution.ray_backend`) subclasses :class:`Executor` and only says how a job is
carried out; submitting, listing, cancelling and waiting are the same for all of them, so the app
and the CLI see one API.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from mucomp.config import MAX_RUNS, SubmissionError, check_run_count
from mucomp.progress import STOP_STATUSES

STATES = ("queued", "running", "completed", "diverged", "cancelled", "failed")
FINISHED = ("completed", "diverged", "cancelled", "failed")
#: The states an exception's ``status`` may set; any other status (even "completed": an exception
#: never brings an experiment) makes the job "failed".
STOPPED = STOP_STATUSES
#: At most this many queued (not yet started) jobs per owner (a browser session) in the app.
MAX_QUEUED_PER_OWNER = 64

#: The environment a job runs under, captured when it is submitted and applied in the worker, so a
#: long-lived worker serves every home and plugin setting of its parent.
JOB_ENV = ("MUCOMP_HOME", "MUCOMP_PLUGINS", "MUCOMP_DEVICE", "MUCOMP_REFERENCE_DIR", "MUCOMP_OFFLINE")


class QueueFullError(SubmissionError):
    """The owner already has the most queued runs allowed."""


def job_environment() -> dict[str, str | None]:
    """The current values of :data:`JOB_ENV` (``None`` where unset)."""
    return {name: os.environ.get(name) for name in JOB_ENV}


@dataclass
class Job:
    """One submitted request and what is known of its progress.

    ``stage`` is the runner's current stage; ``fraction`` its completed share in [0, 1];
    ``figures`` every figure reported so far (the latest value of each: epoch, forget accuracy,
    ...), kept after the stage moves on; ``result`` a short summary of the stored experiment's
    metrics once completed (UA, RA, TUA, TRA, PS, RT, cost).
    """

    id: int
    config: object
    owner: str | None = None
    env: dict = field(default_factory=dict)
    state: str = "queued"
    stage: str = ""
    fraction: float = 0.0
    figures: dict = field(default_factory=dict)
    message: str = ""
    experiment_id: str | None = None
    result: dict = field(default_factory=dict)
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    worker: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def snapshot(self) -> dict:
        """A copy of the job's fields safe to read from another thread."""
        return {
            "id": self.id, "config": self.config, "owner": self.owner, "env": dict(self.env), "state": self.state,
            "stage": self.stage, "fraction": self.fraction, "figures": dict(self.figures),
            "message": self.message, "experiment_id": self.experiment_id, "result": dict(self.result),
            "submitted_at": self.submitted_at, "started_at": self.started_at, "finished_at": self.finished_at,
            "cancel_requested": self.cancel_requested, "worker": self.worker,
        }


def outcome_state(err: BaseException) -> tuple[str, str]:
    """The job state and message for an exception that ended a job."""
    state = getattr(err, "status", "failed")
    state = state if state in STOPPED else "failed"
    text = str(err).strip()
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        text = f"the job raised {type(err).__name__}({text}); a method must return, not exit"
    return state, text or type(err).__name__


@dataclass
class JobOutcome:
    """How a job ended: its ``state`` (one of :data:`FINISHED`), a ``message`` (empty when it
    completed), the stored experiment's id (or None) and a short ``summary`` of its figures."""

    state: str
    message: str = ""
    experiment_id: str | None = None
    summary: dict = field(default_factory=dict)


def carry_out(work: Callable[[], object], *, let_through: tuple[type[BaseException], ...] = ()) -> JobOutcome:
    """Run ``work()`` and say how the job ended, the one way every backend finishes a job.

    ``work`` returns ``(experiment id or None, summary)`` or an object with an ``id``. Any
    exception ends the job (a method that raises SystemExit too: the worker lives on): a ``status``
    of :data:`STOPPED` sets that state, anything else ``"failed"``, with the message (a traceback
    when the exception has none). ``let_through``: exception types re-raised instead (Ray's
    cancellation).
    """
    try:
        outcome = work()
    except BaseException as err:
        if let_through and isinstance(err, let_through):
            raise
        state, text = outcome_state(err)
        if state == "failed" and not str(err).strip():
            text = f"{type(err).__name__}\n{traceback.format_exc(limit=3)}"
        return JobOutcome(state, text)
    if isinstance(outcome, tuple):
        experiment_id, summary = outcome
    else:
        experiment_id, summary = getattr(outcome, "id", None), {}
    return JobOutcome("completed", "", experiment_id, dict(summary or {}))


class Executor:
    """The job API: a FIFO of requests carried out by a backend.

    ``submit`` queues requests and returns their job ids; ``jobs``/``get`` give snapshots;
    ``cancel`` stops a queued job at once and asks a running one to stop; ``wait`` blocks until
    the queue is idle. Subclasses implement :meth:`_start` (begin dispatching) and call
    :meth:`_take`, :meth:`_report` and :meth:`_finish`.
    """

    kind = "base"

    def __init__(self, keep_finished: int = 500, max_queued_per_owner: int | None = None) -> None:
        self._jobs: dict[int, Job] = {}
        self._order: list[int] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # notified on a new job and on a finished one
        self._keep_finished = keep_finished
        self._max_queued_per_owner = max_queued_per_owner
        self._closed = False

    # --- the API -----------------------------------------------------------------------------------
    def submit(self, requests: list, owner: str | None = None, *, max_runs: int | None = MAX_RUNS) -> list[int]:
        """Queue ``requests`` in order; returns their job ids. Refuses the whole submission
        (:class:`SubmissionError`) before queuing anything when it is too large."""
        requests = list(requests)
        check_run_count(len(requests), max_runs)
        env = job_environment()
        with self._lock:
            if self._closed:
                raise SubmissionError("this executor was shut down; start a new one")
            if owner is not None and self._max_queued_per_owner is not None:
                queued = sum(1 for i in self._order if self._jobs[i].owner == owner and self._jobs[i].state == "queued")
                if queued + len(requests) > self._max_queued_per_owner:
                    raise QueueFullError(
                        f"this session has {queued} queued run(s); at most {self._max_queued_per_owner} may wait at "
                        "once. Wait for some to finish or cancel them, then submit again"
                    )
            ids = []
            for request in requests:
                job = Job(next(self._ids), request, owner, env)
                self._jobs[job.id] = job
                self._order.append(job.id)
                ids.append(job.id)
            self._trim()
            self._wake.notify_all()
        self._start()
        return ids

    def cancel(self, job_id: int, owner: str | None = None) -> bool:
        """Cancel a queued job at once, or ask a running one to stop (the backend enforces it).
        False if unknown, finished, or owned by another session."""
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

    def wait(self, timeout: float | None = None, ids: list[int] | None = None) -> bool:
        """Block until no job (of ``ids`` when given) is queued or running; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._busy(ids), timeout)

    def shutdown(self) -> None:
        """Stop taking jobs; backends also stop their workers."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()

    # --- for backends -------------------------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def _busy(self, ids: list[int] | None = None) -> bool:  # hold the lock
        chosen = self._order if ids is None else [i for i in ids if i in self._jobs]
        return any(not self._jobs[i].finished for i in chosen)

    def _take(self, timeout: float = 1.0, worker: str = "") -> Job | None:
        """The oldest queued job, now running; None after ``timeout`` s without one or when closed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._closed:
                for job_id in self._order:
                    job = self._jobs[job_id]
                    if job.state == "queued":
                        job.state, job.started_at, job.worker = "running", time.time(), worker
                        return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._wake.wait(timeout=left)
            return None

    def _report(self, job: Job, stage: str, fraction: float, figures: dict) -> None:
        with self._lock:  # a snapshot never pairs a new stage with an old fraction
            if job.finished:
                return
            job.stage, job.fraction = stage, min(max(float(fraction), 0.0), 1.0)
            job.figures.update(figures)

    def _finish(self, job: Job, state: str, message: str = "", experiment_id: str | None = None,
                result: dict | None = None) -> None:
        with self._lock:
            if job.finished:  # cancelled while queued, or finished by a timeout already
                return
            job.state, job.message, job.experiment_id = state, message, experiment_id
            job.result = dict(result or {})
            job.finished_at = time.time()
            if state == "completed":
                job.fraction = 1.0
            self._wake.notify_all()

    def _cancel_requested(self, job: Job) -> bool:
        with self._lock:
            return job.cancel_requested

    def _trim(self) -> None:  # hold the lock
        finished = [i for i in self._order if self._jobs[i].finished]
        for job_id in finished[: max(0, len(finished) - self._keep_finished)]:
            self._order.remove(job_id)
            del self._jobs[job_id]
