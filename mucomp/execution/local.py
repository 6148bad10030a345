"""The local backend: a pool of worker processes, one job at a time each.

Each worker slot is a thread of the parent that owns one process (:mod:`mucomp.execution.worker`):
it takes the oldest queued job, sends it over the slot's pipe, forwards the progress messages into
the job's snapshot and records the outcome. Nothing of a job runs in the parent (the web server):
its GIL, its garbage collector and its page reruns cannot slow or measure a run.

- Cancel: the slot sets the worker's cancel event (polled before every batch); a job that has not
  stopped :data:`CANCEL_GRACE_S` seconds later is ended by terminating its process.
- A worker that dies (``SystemExit`` from a job, ``os._exit``, a segfault, the OOM killer) fails
  its job with the reason and is replaced; the queue goes on.
- Workers start at once and warm up (imports, UMAP's compilation) before taking a job, so no job
  pays that and no RT is measured while it runs. Where the platform has it, workers are forked
  from a ``forkserver`` that did that warm-up once (:mod:`mucomp.execution.preload`): the first
  worker of a process waits for it (~10 s on 2 cores), every later one starts in well under a
  second. Each worker takes its parent's environment as it is at start, as a spawned one would.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator

from mucomp import settings
from mucomp.execution.jobs import Executor, Job
from mucomp.execution.requests import method_origin
from mucomp.settings import env_int

#: What the fork server imports before it forks any worker.
PRELOAD = ["mucomp.execution.preload"]
#: Seconds a running job has to stop after a cancel before its worker process is terminated.
CANCEL_GRACE_S = 3.0
#: Seconds a new worker may take to start and warm up before it counts as failed.
START_TIMEOUT_S = 300.0
_POLL_S = 0.05


def _exit_reason(exitcode: int | None) -> str:
    """A readable sentence for a worker's exit code."""
    if exitcode is None:
        return "the worker process stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        extra = {"SIGKILL": " (killed: out of memory, or by another process)",
                 "SIGSEGV": " (a crash in native code)"}.get(name, "")
        return f"the worker process was ended by {name}{extra}"
    return f"the worker process exited with code {exitcode} (the method called os._exit or sys.exit)"


@contextlib.contextmanager
def _without_main_module() -> Iterator[None]:
    """Hide the parent's ``__main__`` while a worker is spawned.

    A spawned child re-imports the parent's main script first. In the app that script is a page
    (Streamlit installs each page as ``__main__``): the worker would run page code in bare mode. A
    main module without a file is not re-imported. Methods must therefore be registered by a plugin
    file, an entry point or an importable module, never by the main script alone.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _worker_context():
    """multiprocessing's ``forkserver`` context with :data:`PRELOAD` (``spawn`` where the platform
    has no fork server, e.g. Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # no effect once this process's fork server runs
    return context


class _Worker:
    """One worker process and its pipe."""

    def __init__(self, context, torch_threads: int, warm_umap: bool, name: str) -> None:
        from mucomp.execution import worker

        self.conn, child = context.Pipe(duplex=True)
        self.cancel = context.Event()
        self.process = context.Process(
            target=worker.main, args=(child, self.cancel, torch_threads, warm_umap, dict(os.environ), os.getpid()),
            name=name, daemon=True,
        )
        with _without_main_module():
            self.process.start()
        child.close()
        self.ready = False
        self.warmup_seconds: float | None = None
        self.started_warm = False

    def alive(self) -> bool:
        return self.process.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """Block until the worker says it is warm; False if it died or timed out."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.conn.poll(min(0.2, max(deadline - time.monotonic(), 0))):
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    return False
                if message[0] == "ready":
                    self.ready, self.warmup_seconds = True, float(message[2])
                    self.started_warm = bool(message[3])
            elif not self.alive() or time.monotonic() > deadline:
                return False
        return True

    def stop(self, grace: float = 2.0) -> None:
        """Ask the process to exit, then end it."""
        if self.alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send(None)
            self.process.join(grace)
        if self.alive():
            self.process.terminate()
            self.process.join(grace)
        if self.alive():
            self.process.kill()
            self.process.join(grace)
        self.conn.close()


#: ``OMP_WAIT_POLICY`` of the workers when there are several (unless the environment sets one).
WORKER_WAIT_POLICY = "PASSIVE"


class LocalExecutor(Executor):
    """Jobs in ``workers`` worker processes with ``torch_threads`` torch threads each.

    ``warm_umap``: compile UMAP in each worker before its first job (the embedding stage needs it;
    tests of jobs that never embed may skip it).
    """

    kind = "local"

    def __init__(self, workers: int = 1, torch_threads: int = 1, *, warm_umap: bool = True,
                 max_queued_per_owner: int | None = None, keep_finished: int = 500) -> None:
        super().__init__(keep_finished=keep_finished, max_queued_per_owner=max_queued_per_owner)
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = int(workers)
        self.torch_threads = int(torch_threads)
        self._warm_umap = warm_umap
        if self.workers > 1:
            # GNU OpenMP's idle threads spin on their core: several workers sharing the cores then
            # take turns spinning (two digits references side by side: 207 s each against 9 s with
            # passive waits). Read when a process loads OpenMP, so set before the fork server
            # starts; a user's own setting wins.
            os.environ.setdefault("OMP_WAIT_POLICY", WORKER_WAIT_POLICY)
        self._context = _worker_context()
        self._slots: list[threading.Thread] = []
        self._current: dict[int, _Worker | None] = {}
        self.restarts = 0  # workers replaced after a crash, an unanswered cancel or a recycle
        self._start()

    # --- pool ------------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._closed or self._slots:
                return
            for slot in range(self.workers):
                thread = threading.Thread(target=self._serve, args=(slot,), name=f"mucomp-slot-{slot}", daemon=True)
                self._slots.append(thread)
                self._current[slot] = None
            for thread in self._slots:
                thread.start()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.process.pid for w in self._current.values() if w is not None and w.alive()]

    def workers_started_warm(self) -> list[bool]:
        """Per live, ready worker: whether it started warm (forked from the fork server after its
        warm-up) rather than importing and compiling by itself."""
        return [w.started_warm for w in self._current.values() if w is not None and w.ready]

    def ready(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Block until every worker is warm (or ``timeout``); True when all are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = list(self._current.values())
            if len(current) == self.workers and all(w is not None and w.ready for w in current):
                return True
            time.sleep(0.05)
        return False

    def shutdown(self) -> None:
        super().shutdown()
        for slot, worker in list(self._current.items()):
            if worker is not None:
                worker.stop()
            self._current[slot] = None

    def _spawn(self, slot: int) -> _Worker | None:
        worker = _Worker(self._context, self.torch_threads, self._warm_umap, name=f"mucomp-worker-{slot}")
        self._current[slot] = worker
        if worker.wait_ready(START_TIMEOUT_S):
            return worker
        reason = _exit_reason(worker.process.exitcode if not worker.alive() else None)
        worker.stop()
        self._current[slot] = None
        self._fail_next(f"a worker process could not start: {reason}")
        return None

    def _fail_next(self, message: str) -> None:
        job = self._take(timeout=0.0)
        if job is not None:
            self._finish(job, "failed", message)

    def _serve(self, slot: int) -> None:
        """One slot: keep a warm worker, feed it jobs, watch it."""
        worker: _Worker | None = None
        while not self._closed:
            if worker is None or not worker.alive():
                if worker is not None:
                    worker.stop()
                    self.restarts += 1
                worker = self._spawn(slot)
                if worker is None:
                    time.sleep(1.0)
                    continue
            job = self._take(timeout=1.0, worker=f"pid {worker.process.pid}")
            if job is None:
                continue
            keep = self._run(worker, job)
            if not keep:
                worker.stop()
                worker = None
                self._current[slot] = None
                self.restarts += 1

    def _run(self, worker: _Worker, job: Job) -> bool:
        """Carry out ``job`` on ``worker``; returns whether the worker may take another job."""
        worker.cancel.clear()
        try:
            origin = method_origin(job.config)
        except ValueError as err:
            self._finish(job, "failed", str(err))
            return True
        try:
            worker.conn.send(("run", job.id, job.config, job.owner, job.env, origin))
        except Exception as err:  # e.g. a request that cannot be pickled
            self._finish(job, "failed", f"the job could not be sent to its worker: {type(err).__name__}: {err}")
            return worker.alive()
        cancel_sent: float | None = None
        while True:
            if self._cancel_requested(job) and cancel_sent is None:
                worker.cancel.set()
                cancel_sent = time.monotonic()
            try:
                has_message = worker.conn.poll(_POLL_S)
            except (EOFError, OSError):
                has_message = False
            if has_message:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None and message[1] == job.id:
                    if message[0] == "progress":
                        self._report(job, message[2], message[3], message[4])
                        continue
                    if message[0] == "done":
                        _, _, state, text, experiment_id, summary, recycle = message
                        if cancel_sent is not None and state == "failed":
                            state = "cancelled"  # a stop forced by the cancel is the cancel
                        self._finish(job, state, text, experiment_id, summary)
                        return not recycle
            if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_GRACE_S:
                worker.stop(grace=0.5)
                self._finish(job, "cancelled", f"cancelled: the job did not stop within {CANCEL_GRACE_S:g} s of the "
                                               "request, so its worker process was ended; nothing was stored")
                return False
            if not worker.alive():
                worker.process.join(1.0)
                reason = _exit_reason(worker.process.exitcode)
                self._finish(job, "cancelled" if cancel_sent is not None else "failed",
                             f"{reason}; nothing was stored. The next job runs in a fresh worker")
                return False


_SHARED: dict[tuple, LocalExecutor] = {}
_SHARED_LOCK = threading.Lock()


def shared_executor(workers: int | None = None, torch_threads: int | None = None, **kwargs) -> LocalExecutor:
    """One :class:`LocalExecutor` per process and setting (``MUCOMP_WORKERS`` and
    :func:`mucomp.settings.torch_threads` by default), started on first use and kept for the process's
    life: the app's sessions and pages all submit here."""
    workers = workers if workers is not None else env_int("MUCOMP_WORKERS", 1)
    torch_threads = torch_threads if torch_threads is not None else settings.torch_threads(workers)
    key = (workers, torch_threads, tuple(sorted(kwargs.items())))
    with _SHARED_LOCK:
        executor = _SHARED.get(key)
        if executor is None or executor._closed:
            executor = _SHARED[key] = LocalExecutor(workers, torch_threads, **kwargs)
        return executor
