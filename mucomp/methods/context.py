"""What a method works with: :class:`UnlearnContext`.

A method only says what is particular to it (its losses, its data mix, its mask). The loop
mechanics live here and in :mod:`mucomp.training`, once: data batches drawn from the experiment
seed (augmented where the method declares ``augment`` and the run's value is true), the optimiser
(the one the method declares for the architecture in ``@register(..., optimizer=...)``; by default
SGD with momentum 0.9 and weight decay 5e-4 for the CNNs, AdamW with weight decay 0.01 for the
vision transformers) and the learning-rate schedule a method declares (``lr_schedule``), the
step (cancellation and divergence checks, backward, gradient mask, clipping), the epoch
bookkeeping (weights check, scheduler, forget accuracy, progress, timing), the preparation
timer (teacher copy, saliency mask) whose seconds are kept out of RT, and the cost counts
(:attr:`UnlearnContext.cost`: samples forwarded and back-propagated, optimiser steps), taken by
forward hooks on the model and the teacher so that a method does nothing for them.

A method looks like::

    @register("ga", label="Gradient ascent", defaults={...}, params=[...])
    def gradient_ascent(ctx: UnlearnContext) -> None:
        ctx.set_clip_grad_norm(ctx.hyper["clip_grad_norm"])
        for _epoch in ctx.epochs():
            for images, labels in ctx.forget_batches():
                ctx.step(-F.cross_entropy(ctx.model(images), labels))
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from mucomp.data import Scenario, Split, derive_seed
from mucomp.evaluation import evaluate
from mucomp.methods.plugins import available_methods
from mucomp.methods.registry import FAMILY_OPTIMIZERS
from mucomp.models import arch_info, channels_last
from mucomp.training import (
    CancelFn,
    CostCounter,
    ProgressFn,
    Stepper,
    epoch_loop,
    epoch_scheduler,
    iterate_batches,
    make_generator,
    make_optimizer,
    stop_if_cancelled,
)

Batch = tuple[torch.Tensor, torch.Tensor]


class UnlearnContext:
    """Everything one unlearning run needs, and the shared loop helpers.

    Attributes
    ----------
    method: the registered name of the method being run.
    model: the model being unlearned, on :attr:`device`; the method updates it in place.
    scenario: data set, forget set and training seed (its indices say which images are D_f and D_r).
    hyper: the validated hyper-parameters of this run (read-only), e.g. ``hyper["lr"]``.
    seed: the unlearning seed; :attr:`generator` draws every random choice from it.
    device: where the model and the batches live.
    generator: a CPU ``torch.Generator``; shuffles and random labels come from it, so the same
        configuration gives the same weights.
    records: one dict per finished epoch: ``epoch``, ``forget_accuracy`` (fraction of
        train-forget images still classified as their class), ``loss`` (mean loss stepped in the
        epoch; in an epoch without steps, the mean loss of its :meth:`backward` passes),
        ``seconds`` (RT so far: unlearning-loop seconds, preparation and the per-epoch
        evaluation excluded).
    cost: the run's hardware-independent cost so far (see :attr:`cost`).
    optimizer_name: the optimiser :attr:`optimizer` builds (:data:`mucomp.training.OPTIMIZERS`):
        the ``optimizer`` argument, else what the method declares for the scenario's architecture.

    The cost hooks stay on :attr:`model` (and the teacher) until :meth:`close`; use the context
    as ``with UnlearnContext(...) as ctx:`` or call :meth:`close` when done.
    """

    def __init__(
        self,
        method: str,
        model: nn.Module,
        scenario: Scenario,
        hyper: Mapping[str, Any],
        seed: int,
        *,
        device: torch.device | str = "cpu",
        progress: ProgressFn | None = None,
        cancelled: CancelFn | None = None,
        optimizer: str | None = None,
    ) -> None:
        self.method = method
        self.model = model
        self.scenario = scenario
        self.hyper: Mapping[str, Any] = MappingProxyType(dict(hyper))
        self.seed = int(seed)
        self.device = torch.device(device)
        self.generator = make_generator(derive_seed(self.seed, "unlearn"))
        # Crops and flips of an augmenting run (hyper "augment") come from their own stream, so
        # turning augmentation on changes no shuffle and no random label.
        self._augment_generator = make_generator(derive_seed(self.seed, "augment"))
        self.records: list[dict] = []
        self._progress = progress
        self._cancelled = cancelled
        self._optimizer: torch.optim.Optimizer | None = None
        self.optimizer_name = optimizer or _declared_optimizer(method, getattr(scenario, "arch", None))
        self._scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self._stepper: Stepper | None = None
        self._clip: float | None = None
        self._mask: dict[str, torch.Tensor] | None = None
        self._mask_restore = True
        self._teacher: nn.Module | None = None
        self._cost = CostCounter()
        self._cost.watch(model, trained=True)
        self._backward_losses: list[float] = []  # this epoch's gradient passes without a step
        self.prep_seconds = 0.0
        self.eval_seconds = 0.0
        self._started = time.perf_counter()

    # --- the run's figures ---------------------------------------------------------------------
    @property
    def num_epochs(self) -> int:
        """The ``epochs`` hyper-parameter."""
        return int(self.hyper["epochs"])

    @property
    def lr(self) -> float:
        return float(self.hyper["lr"])

    @property
    def batch_size(self) -> int:
        return int(self.hyper["batch_size"])

    @property
    def split(self) -> Split:
        """The training split that D_f and D_r index."""
        return self.scenario.data.train

    @property
    def forget_indices(self) -> np.ndarray:
        """Train indices of the forget class (D_f), ``[n_f]`` int64."""
        return self.scenario.forget_indices

    @property
    def retain_indices(self) -> np.ndarray:
        """Train indices of the other classes (D_r), ``[n_r]`` int64."""
        return self.scenario.retain_indices

    @property
    def num_classes(self) -> int:
        return self.scenario.spec.num_classes

    @property
    def forget_class(self) -> int:
        """The forgotten class, for methods defined for one class (UNSIR). ValueError saying so
        when the scenario's forget set is several classes or images."""
        if self.scenario.forget_class is None:
            raise ValueError(f"this method forgets one class; the scenario's forget set is "
                             f"{self.scenario.forget_set.text}: choose a forget set class:K")
        return self.scenario.forget_class

    @property
    def steps(self) -> int:
        """Optimiser steps taken so far."""
        return self._stepper.steps if self._stepper is not None else 0

    @property
    def cost(self) -> dict[str, int]:
        """Hardware-independent cost so far, in samples and steps.

        ``samples_forwarded``: samples through a forward of :attr:`model` or :meth:`teacher`
        (grad enabled or not); ``samples_backpropagated``: samples forwarded through
        :attr:`model` with grad enabled whose loss was then stepped (counted at each
        :meth:`step`); ``optimizer_steps``: :attr:`steps`. The per-epoch forget-accuracy pass is
        not counted.
        """
        return {
            "samples_forwarded": int(self._cost.samples_forwarded),
            "samples_backpropagated": int(self._cost.samples_backpropagated),
            "optimizer_steps": int(self.steps),
        }

    def close(self) -> None:
        """Remove the cost hooks from the model and the teacher (idempotent; counts stay)."""
        self._cost.close()

    def __enter__(self) -> UnlearnContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def elapsed_rt(self) -> float:
        """Seconds of unlearning loop so far (wall clock minus preparation and evaluation)."""
        return time.perf_counter() - self._started - self.prep_seconds - self.eval_seconds

    # --- data ----------------------------------------------------------------------------------
    def batches(
        self,
        indices: np.ndarray,
        *,
        labels: np.ndarray | torch.Tensor | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
    ) -> Iterator[Batch]:
        """Batches ``(images [b, C, H, W], labels [b])`` over train ``indices``, on the device.

        Shuffled from :attr:`generator` unless ``shuffle=False``. Augmented (random crop with
        4 px padding and horizontal flip, :func:`mucomp.training.augment_batch`) when the run's
        ``augment`` hyper-parameter is true (a method declares it, :data:`~mucomp.methods.params.AUGMENT`,
        where a recipe it cites augments), from a stream of the unlearning seed of its own;
        evaluation passes (:meth:`forget_accuracy`, the experiment's metrics) never are.
        ``labels`` (aligned with ``indices``) replaces the true labels. Cancellation is checked
        before each batch.
        """
        for batch in iterate_batches(
            self.split, indices, batch_size or self.batch_size, self.generator if shuffle else None,
            labels=labels, device=self.device, channels_last=channels_last(self.model),
            augment=bool(self.hyper.get("augment", False)), augment_generator=self._augment_generator,
        ):
            self.check_cancelled()
            yield batch

    def forget_batches(
        self, batch_size: int | None = None, *, labels: np.ndarray | torch.Tensor | None = None, shuffle: bool = True
    ) -> Iterator[Batch]:
        """:meth:`batches` over the forget set D_f."""
        return self.batches(self.forget_indices, labels=labels, batch_size=batch_size, shuffle=shuffle)

    def retain_batches(self, batch_size: int | None = None, *, shuffle: bool = True) -> Iterator[Batch]:
        """:meth:`batches` over the retain set D_r."""
        return self.batches(self.retain_indices, batch_size=batch_size, shuffle=shuffle)

    # --- optimisation --------------------------------------------------------------------------
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimiser, at ``lr``: :attr:`optimizer_name` (what the method declares for the
        scenario's architecture, see :func:`~mucomp.methods.registry.register`; by default SGD
        with momentum 0.9 and weight decay 5e-4 for the CNNs, AdamW with weight decay 0.01 for
        the vision transformers), unless :meth:`set_optimizer` gave another. A run whose method
        declares ``lr_schedule`` (:data:`~mucomp.methods.params.LR_SCHEDULE`) gets that per-epoch
        schedule with it (cosine from ``lr`` to ``lr_floor`` over the run's epochs, or constant)."""
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.optimizer_name, self.model.parameters(), self.lr)
            if self.hyper.get("lr_schedule", "constant") != "constant":
                self._scheduler = epoch_scheduler(self._optimizer, self.num_epochs, self.hyper["lr_schedule"],
                                                  eta_min=float(self.hyper.get("lr_floor", 0.0)))
        return self._optimizer

    def set_optimizer(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> None:
        """Use another optimiser (and optionally a per-epoch scheduler); before the first step."""
        self._before_first_step("set_optimizer")
        self._optimizer, self._scheduler, self._stepper = optimizer, scheduler, None

    def fresh_optimizer(self) -> None:
        """Start the optimiser anew (:attr:`optimizer_name` at ``lr``, zero moments), for a method
        whose authors build a new optimiser per phase (UNSIR's impair and repair). The step count
        and the clip carry on; a run with a scheduler (:meth:`set_optimizer`) can't."""
        if self._scheduler is not None:
            raise ValueError("fresh_optimizer: this run's scheduler is bound to its first optimiser")
        self._optimizer = make_optimizer(self.optimizer_name, self.model.parameters(), self.lr)
        if self._stepper is not None:
            self._stepper.optimizer = self._optimizer

    def set_clip_grad_norm(self, max_norm: float | None) -> None:
        """Clip the global gradient norm to ``max_norm`` before every step (``None`` / 0: off)."""
        self._clip = float(max_norm) if max_norm else None
        if self._stepper is not None:
            self._stepper.clip_grad_norm = self._clip

    def set_grad_mask(self, mask: Mapping[str, torch.Tensor] | None, *, restore: bool = True) -> None:
        """Only the weights where ``mask`` (parameter name -> 0/1 tensor) is 1 move from now on;
        the others keep their current values exactly (weight decay included). ``restore=False``
        masks only the gradients: weight decay still shrinks the other weights (what code that
        multiplies ``param.grad`` by the mask before an SGD step does)."""
        self._mask = dict(mask) if mask else None
        self._mask_restore = bool(restore)
        if self._stepper is not None:
            self._stepper.set_grad_mask(self._mask, restore=self._mask_restore)

    @property
    def stepper(self) -> Stepper:
        if self._stepper is None:
            self._stepper = Stepper(
                self.model, self.optimizer, clip_grad_norm=self._clip, cancelled=self.cancelled, cost=self._cost
            )
            if self._mask:
                self._stepper.set_grad_mask(self._mask, restore=self._mask_restore)
        return self._stepper

    def step(self, loss: torch.Tensor) -> float:
        """One optimiser step on ``loss`` (scalar tensor); returns its value.

        Checks cancellation first and stops the run as ``"diverged"`` on a NaN / inf loss.
        """
        return self.stepper.step(loss)

    def cancelled(self) -> bool:
        """Whether the user asked to stop."""
        return bool(self._cancelled is not None and self._cancelled())

    def check_cancelled(self) -> None:
        """Stop the run with status ``"cancelled"`` if the user asked to."""
        stop_if_cancelled(self._cancelled, f"during epoch {self._stepper.epoch if self._stepper is not None else 0}")

    def epochs(self, total: int | None = None) -> Iterator[int]:
        """Yield ``1..total`` (default: the ``epochs`` hyper-parameter), one per epoch.

        The model is put in train mode for each epoch. After each: weights checked, scheduler
        stepped, forget accuracy measured (not counted in RT), a record appended and
        ``progress(epoch, total, ...)`` called.
        """
        total = self.num_epochs if total is None else int(total)
        for epoch in epoch_loop(self.stepper, total, self._scheduler, lambda e, loss: self.end_epoch(e, total, loss)):
            self.model.train()
            yield epoch

    def end_epoch(self, epoch: int, total: int, loss: float) -> None:
        """Record a finished epoch and report progress (called by :meth:`epochs`)."""
        accuracy = self.forget_accuracy()
        if not np.isfinite(loss) and self._backward_losses:  # an epoch of gradient passes only (SSD)
            loss = float(np.mean(self._backward_losses))
        self._backward_losses = []
        record = {"epoch": int(epoch), "forget_accuracy": accuracy, "loss": float(loss), "seconds": self.elapsed_rt()}
        self.records.append(record)
        if self._progress is not None:
            self._progress(epoch, total, method=self.method, **{k: v for k, v in record.items() if k != "epoch"})

    def forget_accuracy(self) -> float:
        """Share of the train-forget images predicted as their class (one eval pass; its time
        is not counted in RT nor in :attr:`cost`)."""
        start = time.perf_counter()
        with self._cost.paused():
            result = evaluate(self.model, self.split, self.forget_indices, device=self.device)
        accuracy = float((result.predictions == result.labels).mean()) if len(result) else float("nan")
        self.eval_seconds += time.perf_counter() - start
        return accuracy

    # --- preparation ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def preparation(self) -> Iterator[None]:
        """Time spent inside counts as preparation (reported apart, not in RT).

        Forwards inside count in ``cost["samples_forwarded"]``; their gradients are not stepped,
        so they never count as back-propagated.
        """
        start = time.perf_counter()
        try:
            with self._cost.unstepped():
                yield
        finally:
            self.prep_seconds += time.perf_counter() - start

    def teacher(self) -> nn.Module:
        """A frozen copy of the model as it was before the run (eval mode, no gradients).

        The first call makes the copy (preparation time); call it before the first step.
        """
        if self._teacher is None:
            self._before_first_step("teacher")
            with self.preparation():
                teacher = copy.deepcopy(self.model).eval()
                for param in teacher.parameters():
                    param.requires_grad_(False)
                self._cost.watch(teacher, trained=False)
                self._teacher = teacher
        return self._teacher

    def frozen(self, module: nn.Module) -> nn.Module:
        """``module`` as a frozen helper of the run (eval mode, no gradients, on :attr:`device`),
        its forwards counted in :attr:`cost` like the teacher's (e.g. Bad Teacher's incompetent
        teacher). Returns the module."""
        module = module.to(self.device).eval()
        for param in module.parameters():
            param.requires_grad_(False)
        self._cost.watch(module, trained=False)
        return module

    def backward(self, loss: torch.Tensor) -> float:
        """Gradients of ``loss`` (scalar) into ``.grad`` without an optimiser step, for methods
        that read gradients (importances, noise). Clears the model's old gradients first; the
        samples forwarded with grad enabled count as back-propagated. Returns the loss value.
        Checks cancellation first."""
        self.check_cancelled()
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        self._cost.stepped()
        value = float(loss.detach())
        self._backward_losses.append(value)
        return value

    def _before_first_step(self, what: str) -> None:
        if self.steps:
            raise RuntimeError(f"ctx.{what}() must be called before the first ctx.step()")


def _declared_optimizer(method: str, arch: str | None) -> str:
    """The optimiser ``method`` declares for ``arch`` (the family default for a name that is not
    registered, e.g. a context built by hand in a test)."""
    info = available_methods().get(method)
    if info is not None:
        return info.optimizer_for(arch)
    return FAMILY_OPTIMIZERS[arch_info(arch).family if arch else "cnn"]
