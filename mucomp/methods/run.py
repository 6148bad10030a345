"""The method runner: one unlearning run of a registered method, nothing more.

:func:`run_unlearning` resolves and validates the hyper-parameters, builds the
:class:`~mucomp.methods.context.UnlearnContext`, runs the method and reports how it went. It does
not evaluate the result (the experiment runner does that once, for every view) and it never
raises for a run that diverged, was cancelled or crashed inside the method: those come back as
the result's ``status`` and ``message``. Bad arguments (an unknown method, an out-of-range
hyper-parameter) raise ValueError before anything runs.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from mucomp.data import Scenario
from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import get_method
from mucomp.training import CancelFn, ProgressFn, RunStopped

STATUSES = ("completed", "diverged", "cancelled", "failed")


@dataclass
class UnlearnResult:
    """How one unlearning run went.

    Attributes
    ----------
    method: registered name of the method.
    status: ``"completed"``, ``"diverged"`` (a NaN / inf loss or weight), ``"cancelled"`` (by
        the user) or ``"failed"`` (the method raised; ``traceback`` holds the details).
    message: empty when completed, else a readable sentence (epoch and learning rate for a
        divergence).
    hyper: the hyper-parameters actually used (the data set's defaults merged with the user's).
    seed: the experiment seed.
    rt_seconds: wall-clock seconds of the unlearning loop only (RT).
    prep_seconds: seconds of preparation (teacher copy, saliency mask), not in RT.
    eval_seconds: seconds of the per-epoch forget-accuracy passes, not in RT.
    epochs: per-epoch records ``{"epoch", "forget_accuracy", "loss", "seconds"}``.
    steps: optimiser steps taken.
    """

    method: str
    status: str
    message: str
    hyper: dict[str, Any]
    seed: int
    rt_seconds: float
    prep_seconds: float
    eval_seconds: float
    epochs: list[dict] = field(default_factory=list)
    steps: int = 0
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def as_dict(self) -> dict:
        return asdict(self)


def run_unlearning(
    method: str,
    model: nn.Module,
    scenario: Scenario,
    hyper: dict[str, Any] | None = None,
    seed: int | None = None,
    *,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
) -> UnlearnResult:
    """Run the registered ``method`` on ``model`` (updated in place) for ``scenario``.

    Parameters
    ----------
    method:
        A name from :func:`~mucomp.methods.registry.available_methods`.
    model:
        The base model, already a copy the caller may lose (e.g. a deep copy of the Original).
        On return it holds the unlearned weights (partial ones if the run stopped early), in
        eval mode.
    scenario:
        Data set and forget class; D_f / D_r come from it.
    hyper:
        User hyper-parameters; unset ones take the method's defaults for the data set.
    seed:
        Experiment seed (default: the scenario's); every random choice derives from it.
    device:
        Where to run (default: where the model's parameters are); the model is moved there.
    progress:
        ``progress(epoch, total, method=..., forget_accuracy=..., loss=..., seconds=...)``
        after each epoch.
    cancelled:
        Polled before every batch; returning True stops the run at the next batch.

    Raises
    ------
    ValueError
        Unknown method, unknown hyper-parameter or a value out of its range (the message
        names the parameter and the allowed values).
    """
    info = get_method(method)
    resolved = info.resolve(scenario.dataset, hyper)
    seed = scenario.seed if seed is None else int(seed)
    if device is None:
        device = next(model.parameters()).device
    model.to(device)
    # Loading the data set and cutting D_f / D_r is not unlearning: do it before the clock starts.
    scenario.forget_indices, scenario.retain_indices  # noqa: B018
    ctx = UnlearnContext(
        info.name, model, scenario, resolved, seed, device=device, progress=progress, cancelled=cancelled
    )
    status, message, details = "completed", "", ""
    try:
        ctx.check_cancelled()
        info.fn(ctx)
    except RunStopped as stop:
        status, message = stop.status, stop.message
    except Exception as err:  # a user's method must not take the app down with it
        status = "failed"
        message = f"the method {info.name!r} raised {type(err).__name__}: {err}"
        details = traceback.format_exc()
    rt_seconds = max(ctx.elapsed_rt(), 0.0)  # the clock the epoch records use
    model.eval()
    return UnlearnResult(
        method=info.name,
        status=status,
        message=message,
        hyper=dict(resolved),
        seed=seed,
        rt_seconds=rt_seconds,
        prep_seconds=ctx.prep_seconds,
        eval_seconds=ctx.eval_seconds,
        epochs=list(ctx.records),
        steps=ctx.steps,
        traceback=details,
    )
