"""The worker process of the local backend: it runs one job at a time, sent over a pipe.

Protocol (tuples over a :func:`multiprocessing.Pipe`): the worker sends ``("ready", pid,
seconds, started_warm)`` once warm (``started_warm``: UMAP was compiled before it started, in the
fork server), then for each ``("run", job_id, request, owner, env, origin)`` it receives
it sends ``("progress", job_id, stage, fraction, figures)`` as the job goes and finally
``("done", job_id, state, message, experiment_id, summary, recycle)``. ``None`` asks it to exit.
Cancellation is a shared :class:`multiprocessing.Event`, polled by the run before every batch;
the parent ends the process if a job ignores it (see :mod:`mucomp.execution.local`).

``recycle`` is True when the job left the process unfit for the next one (a method wrote into the
shared data): the worker then exits and the parent starts a fresh one. torch's global switches
are restored in place instead (see :mod:`mucomp.methods.guard` for the costs of both).
"""

from __future__ import annotations

import os
import signal
import threading
import time


def _warm_up(torch_threads: int, umap: bool) -> None:
    """Imports and one-time compilation, before the worker says it is ready, so that no job pays
    them (and no job's RT is measured while they run)."""
    import torch

    torch.set_num_threads(max(1, int(torch_threads)))
    import mucomp.execution.execute  # noqa: F401  (the experiment layer, and the built-in methods register)

    if umap:
        from mucomp.embedding import warm_up

        warm_up(background=False)


def _exit_with(parent_pid: int, every_s: float = 2.0) -> None:
    """End this process soon after ``parent_pid`` is gone. A worker forked from the fork server is
    not the executor's child, so nothing else stops it when the executor is killed (``kill``, the
    OOM killer) in the middle of a long job; without this it trains on for nobody."""

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except OSError:  # e.g. no permission: it exists
                pass

    threading.Thread(target=watch, name="mucomp-parent-watch", daemon=True).start()


def main(conn, cancel_event, torch_threads: int = 1, warm_umap: bool = True,
         environ: dict[str, str] | None = None, parent_pid: int | None = None) -> None:
    """The worker loop (the target of the worker process). ``environ``: the parent's environment
    at start, which a worker forked from the fork server would not otherwise have; ``parent_pid``:
    the executor's process, whose end ends this one."""
    if parent_pid is not None:
        _exit_with(parent_pid)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start = time.perf_counter()
    from mucomp.embedding import is_warm

    started_warm = is_warm()  # forked from the fork server, which compiled UMAP already
    _warm_up(torch_threads, warm_umap)
    from mucomp.execution.execute import execute
    from mucomp.execution.jobs import carry_out
    from mucomp.execution.requests import ensure_method, job_environment_applied
    from mucomp.methods.guard import data_tainted, restore_torch_state, torch_state

    baseline = torch_state()
    conn.send(("ready", os.getpid(), time.perf_counter() - start, started_warm))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if message is None:
            return
        _, job_id, request, owner, env, origin = message

        def progress(stage, fraction, job_id=job_id, **figures):
            conn.send(("progress", job_id, stage, float(fraction), figures))

        def work(request=request, owner=owner, env=env, origin=origin, progress=progress):
            with job_environment_applied(env):
                ensure_method(origin)
                return execute(request, progress=progress, cancel=cancel_event.is_set, owner=owner)

        outcome = carry_out(work)  # the worker outlives any single job, even a SystemExit in it
        restore_torch_state(baseline)
        recycle = bool(data_tainted())
        try:
            conn.send(("done", job_id, outcome.state, outcome.message, outcome.experiment_id, outcome.summary,
                       recycle))
        except (BrokenPipeError, OSError):
            return
        if recycle:
            return
