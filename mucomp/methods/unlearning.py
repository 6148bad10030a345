"""The method runner: one unlearning run of a registered method, nothing more.

:func:`run_unlearning` resolves and validates the hyper-parameters, builds the
:class:`~mucomp.methods.context.UnlearnContext`, runs the method and reports how it went. It does
not evaluate the result (the experiment runner does that once, for every view) and it never
raises for a run that diverged, was cancelled or crashed inside the method: those come back as
the result's ``status`` and ``message``. Bad arguments (an unknown method, an out-of-range
hyper-parameter) raise ValueError before anything runs.

RT measures the method only. Before the clock starts, the first run of a process for a model
class, device and image shape does a warm-up (:func:`warm_up`: one forward, backward and
optimiser step of one retain batch on a throw-away copy of the model), so that one-time costs
(lazy imports and initialisation, kernel selection, allocator growth) fall on no run's RT. The
run also reports its hardware-independent cost (:attr:`UnlearnResult.cost`), which does not
vary with the machine.
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mucomp.data import Scenario, Split
from mucomp.methods.context import UnlearnContext
from mucomp.methods.guard import method_guard
from mucomp.methods.plugins import get_method
from mucomp.methods.registry import MethodInfo
from mucomp.models import to_memory_format
from mucomp.progress import CancelFn, ProgressFn, RunStopped
from mucomp.training import Stepper, iterate_batches, make_optimizer

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
    warmup_seconds: seconds of the one-time warm-up before the clock (:func:`warm_up`; 0.0 when
        the process was already warm), not in RT.
    cost: hardware-independent cost of the method: ``samples_forwarded`` (samples through a
        forward of the model or its teacher), ``samples_backpropagated`` (samples whose loss was
        back-propagated and stepped), ``optimizer_steps`` (ints; see
        :attr:`~mucomp.methods.context.UnlearnContext.cost`).
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
    warmup_seconds: float = 0.0
    cost: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def as_dict(self) -> dict:
        return asdict(self)


#: Warm-up keys done in this process: (model class, device, image shape ``(C, H, W)``).
_WARMED: set[tuple] = set()
_WARM_LOCK = threading.Lock()


def _device_key(device: torch.device) -> str:
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def warm_up(
    model: nn.Module, scenario: Scenario, batch_size: int, device: torch.device | str, optimizer: str = "sgd"
) -> float:
    """Warm the process up for ``model``'s class on ``device`` once; returns the seconds it took.

    One forward and backward (cross-entropy) of ONE batch (the first ``batch_size`` retain
    images, in order) on a deep copy of ``model`` in train mode, with one step of the run's
    ``optimizer`` (its first construction and step are one-time costs too); the copy is dropped
    afterwards. ``model`` itself (weights, BatchNorm statistics, gradients, mode) is left
    bit-for-bit as it was, and torch's global random state is restored, so no generator of the
    run is consumed. Done once
    per process and (model class, device, image shape ``(C, H, W)``); later calls return 0.0.
    A warm-up that fails is not marked done (the method will meet the same problem and report
    it) and never raises.
    """
    device = torch.device(device)
    split = scenario.data.train
    indices = scenario.retain_indices[: max(int(batch_size), 1)]
    if len(indices) == 0:
        return 0.0
    model_class = type(model)
    key = (model_class.__module__, model_class.__qualname__, _device_key(device), tuple(split.images.shape[1:]))
    with _WARM_LOCK:
        if key in _WARMED:
            return 0.0
        start = time.perf_counter()
        try:
            _forward_backward_once(model, split, indices, device, optimizer)
        except Exception:  # the run reports the problem itself, if it matters
            return time.perf_counter() - start
        _WARMED.add(key)
        return time.perf_counter() - start


def _forward_backward_once(
    model: nn.Module, split: Split, indices: np.ndarray, device: torch.device, optimizer: str = "sgd"
) -> None:
    """One cross-entropy forward + backward of ``split[indices]`` (one batch) on a copy of
    ``model``, stepped by the shared :class:`~mucomp.training.Stepper` with ``optimizer``."""
    images, labels = next(iterate_batches(split, indices, len(indices), None, device=device))
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # the global RNG (dropout, say) comes back as it was
        replica = copy.deepcopy(model).train()
        with torch.enable_grad():
            loss = F.cross_entropy(replica(images), labels)
            if loss.requires_grad:
                # The step too: building the first optimiser and its first step import and set
                # up parts of torch once per process (seconds on a small CPU).
                Stepper(replica, make_optimizer(optimizer, replica.parameters(), 1e-3), clip_grad_norm=1.0).step(loss)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        del replica, loss


def reset_warm_up() -> None:
    """Forget which warm-ups this process did (the next run warms up again); for tests."""
    with _WARM_LOCK:
        _WARMED.clear()


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
        A name from :func:`~mucomp.methods.plugins.available_methods`.
    model:
        The base model, already a copy the caller may lose (e.g. a deep copy of the Original).
        On return it holds the unlearned weights (partial ones if the run stopped early), in
        eval mode.
    scenario:
        Data set and forget class; D_f / D_r come from it.
    hyper:
        User hyper-parameters; unset ones take the method's defaults for the data set and the
        scenario's architecture.
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
    resolved = info.resolve_for(scenario, hyper)
    optimizer = info.optimizer_for(scenario.arch)
    seed = scenario.train_seed if seed is None else int(seed)
    if device is None:
        device = next(model.parameters()).device
    to_memory_format(model.to(device))
    # Loading the data set and cutting D_f / D_r is not unlearning: do it before the clock starts,
    # and so is the process's one-time warm-up.
    scenario.forget_indices, scenario.retain_indices  # noqa: B018
    warmup_seconds = warm_up(model, scenario, int(resolved["batch_size"]), device, optimizer)
    ctx = UnlearnContext(
        info.name, model, scenario, resolved, seed, device=device, progress=progress, cancelled=cancelled,
        optimizer=optimizer,
    )
    # A user's method runs next to data and settings that later runs share: whatever it leaves
    # changed is undone here and fails the run (built-ins are trusted with the data check).
    with method_guard(scenario, check_data=not info.builtin) as guard:
        status, message, details, rt_seconds = _call(info, ctx)
    if guard.problem:
        status = "failed" if status == "completed" else status
        message = f"{message}; {guard.problem}" if message else guard.problem
    model.eval()
    return UnlearnResult(
        method=info.name, status=status, message=message, hyper=dict(resolved), seed=seed, rt_seconds=rt_seconds,
        prep_seconds=ctx.prep_seconds, eval_seconds=ctx.eval_seconds, epochs=list(ctx.records), steps=ctx.steps,
        traceback=details, warmup_seconds=warmup_seconds, cost=ctx.cost,
    )


def _call(info: MethodInfo, ctx: UnlearnContext) -> tuple[str, str, str, float]:
    """Run the method's function: ``(status, message, traceback, RT seconds)``; the method's
    cost hooks come off the model whatever happened."""
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
    finally:
        rt_seconds = max(ctx.elapsed_rt(), 0.0)  # the clock the epoch records use
        ctx.close()
    return status, message, details, rt_seconds
