"""The inline backend: jobs run one after another in a thread of the calling process.

For the headless command, which is already a process of its own with nothing else to slow it
(``mucomp run`` without ``--workers``): it adds no start-up to a single run. Never used by the
app, whose process serves the pages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from mucomp.execution.jobs import Executor, Job, carry_out

RunFn = Callable[..., tuple]  # run(request, progress=..., cancel=..., owner=...) -> (experiment id, summary)


def _execute(request, *, progress, cancel, owner):
    # Here, not at import: the job API (this module included) stays torch-free for the pages;
    # only the process that runs a job imports the experiment layer.
    from mucomp.execution.execute import execute
    from mucomp.experiment import reload_tainted_data

    try:
        return execute(request, progress=progress, cancel=cancel, owner=owner)
    finally:
        reload_tainted_data()  # a method that wrote into the shared data must not reach the next run


class InlineExecutor(Executor):
    """A FIFO of requests run by one daemon thread with ``run_fn`` (default: :func:`execute`).

    ``run_fn(request, progress=callable(stage, fraction, **figures), cancel=callable() -> bool,
    owner=...)`` returns ``(experiment id or None, summary)`` or an object with an ``id``, or
    raises; an exception with a ``status`` of ``"diverged"`` / ``"cancelled"`` / ``"failed"``
    sets that state, any other exception sets ``"failed"`` with the message.
    """

    kind = "inline"

    def __init__(self, run_fn: RunFn | None = None, keep_finished: int = 500,
                 max_queued_per_owner: int | None = None) -> None:
        super().__init__(keep_finished=keep_finished, max_queued_per_owner=max_queued_per_owner)
        self._run_fn = run_fn or _execute
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="mucomp-jobs", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while not self._closed:
            job = self._take(timeout=1.0, worker="inline")
            if job is not None:
                self._run(job)

    def _run(self, job: Job) -> None:
        def progress(stage: str, fraction: float, **figures) -> None:
            self._report(job, stage, fraction, figures)

        def cancel() -> bool:
            return self._cancel_requested(job)

        # The thread must outlive any single run, even a SystemExit in it.
        outcome = carry_out(lambda: self._run_fn(job.config, progress=progress, cancel=cancel, owner=job.owner))
        self._finish(job, outcome.state, outcome.message, outcome.experiment_id, outcome.summary)


#: The name the first version used; kept for scripts that import it.
JobQueue = InlineExecutor
