"""Choosing a backend of the job API by name."""

from __future__ import annotations

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
