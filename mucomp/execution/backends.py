"""Choosing a backend of the job API by name."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from mucomp.execution.inline import InlineExecutor
from mucomp.execution.jobs import Executor
from mucomp.execution.local import LocalExecutor

BACKENDS = ("inline", "local", "ray")


def make_executor(kind: str = "local", *, workers: int = 1, torch_threads: int = 1,
                  ray_address: str | None = None, **kwargs) -> Executor:
    """A new executor of backend ``kind`` (see :data:`BACKENDS`)."""
    if kind == "inline":
        return InlineExecutor(**kwargs)
    if kind == "local":
        return LocalExecutor(workers, torch_threads, **kwargs)
    if kind == "ray":
        from mucomp.execution.ray_backend import RayExecutor  # Ray is an optional extra

        return RayExecutor(address=ray_address, torch_threads=torch_threads, **kwargs)
    raise ValueError(f"unknown executor {kind!r}; use one of {', '.join(BACKENDS)}")


def run_to_completion(
    requests: Sequence,
    *,
    workers: int = 0,
    torch_threads: int | None = None,
    follow: Callable[[list[dict]], None] | None = None,
    poll_s: float = 0.2,
    executor: str = "local",
    ray_address: str | None = None,
) -> list[dict | None]:
    """Run ``requests`` through the job API and wait for all of them: in this process
    (``workers=0``, the inline executor) or on ``workers`` local worker processes (``torch_threads``
    each; default: the cores shared out); with ``executor="ray"`` on a Ray cluster instead
    (``ray_address``; default: an initialised or a new local Ray; ``torch_threads`` CPUs per task,
    default 1). ``follow(snapshots)`` every ``poll_s`` seconds while they run (progress display).
    Ctrl-C cancels every job and is raised again. Returns the jobs' final snapshots, in the
    requests' order (None for one the executor lost)."""
    if executor == "ray":
        chosen = make_executor("ray", ray_address=ray_address, torch_threads=torch_threads or 1)
    elif executor != "local":
        raise ValueError(f"unknown executor {executor!r}; use local or ray")
    elif workers and workers > 0:
        count = min(int(workers), len(requests))
        threads = torch_threads or max(1, (os.cpu_count() or 1) // count)
        chosen = make_executor("local", workers=count, torch_threads=threads, warm_umap=False)
    else:
        chosen = make_executor("inline")
    return _wait_for(chosen, requests, follow, poll_s)


def _wait_for(executor: Executor, requests: Sequence, follow: Callable[[list[dict]], None] | None,
              poll_s: float) -> list[dict | None]:
    """Submit ``requests`` to ``executor``, wait for them (Ctrl-C cancels them), shut it down."""
    try:
        ids = executor.submit(list(requests), max_runs=None)
        try:
            while not executor.wait(poll_s, ids):
                if follow is not None:
                    follow([j for j in (executor.get(i) for i in ids) if j is not None])
        except KeyboardInterrupt:
            for job_id in ids:
                executor.cancel(job_id)
            executor.wait(10, ids)
            raise
        return [executor.get(i) for i in ids]
    finally:
        executor.shutdown()
