"""How long work reports progress and stops early: the callback types and the one stop exception.

Every layer that runs something long (a data set download, reference training, an unlearning
run, an audit, a job) takes the same two callbacks and raises the same exception, so a job
backend finishes every kind of job the same way:

- ``progress(stage, fraction, **figures)``: ``stage`` names the work (``"unlearning"``,
  ``"evaluating"``, ...), ``fraction`` is the completed share of that stage in [0, 1], counted in
  real work units (batches, layers, steps), and ``figures`` are the latest values worth showing
  (epoch, forget accuracy, ...).
- ``cancelled() -> bool``: polled between work units; true once the user asked to stop.
- :class:`RunStopped`: work that ended without a result, with a ``status``
  (``"diverged"``, ``"cancelled"`` or ``"failed"``) and a message saying why.

Torch-free: the store's locks and the job bookkeeping use these names too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]

#: The stages of an experiment, in order, as its progress reports them.
EXPERIMENT_STAGES = ("references", "unlearning", "evaluating", "privacy", "similarity", "embedding", "saving")
#: The statuses a :class:`RunStopped` may carry.
STOP_STATUSES = ("diverged", "cancelled", "failed")


class RunStopped(Exception):
    """Work ended early. ``status`` is one of :data:`STOP_STATUSES`; the message says why."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def stop_if_cancelled(cancelled: CancelFn | None, when: str) -> None:
    """Raise :class:`RunStopped` (``"cancelled"``) when ``cancelled()`` says the user asked to stop;
    ``when`` completes the message: "cancelled by the user " + ``when`` (``"during epoch 3"``)."""
    if cancelled is not None and cancelled():
        raise RunStopped("cancelled", f"cancelled by the user {when}")


def stage_reporter(progress: ProgressFn | None, stage: str) -> Callable[..., None]:
    """A ``report(done, total, **figures)`` callback that reports ``stage`` at ``done / total``
    (clipped to [0, 1]; a zero ``total`` reports the stage as done). No-op without ``progress``."""

    def report(done: float, total: float, **figures: Any) -> None:
        if progress is not None:
            progress(stage, min(max(done / total, 0.0), 1.0) if total else 1.0, **figures)

    return report
