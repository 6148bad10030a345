"""The one seeded training loop and the optimisation step every method shares.

:class:`Stepper` owns what happens to a loss: the cancellation check, the divergence check,
backward, an optional gradient mask, optional gradient-norm clipping and the optimiser step.
:func:`epoch_loop` owns what happens between epochs: the weights check, the scheduler step and
the end-of-epoch callback. :func:`train` is plain supervised training built on both; reference
models and Retrain use it, and the unlearning methods (:mod:`mucomp.methods`) drive the same
:class:`Stepper` and :func:`epoch_loop` with their own losses. :class:`CostCounter` counts the
samples an unlearning run forwards and back-propagates (its hardware-independent cost), fed by
forward hooks and by the stepper.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mucomp.data import Split
from mucomp.models import channels_last, to_memory_format
from mucomp.progress import CancelFn, ProgressFn, RunStopped, stop_if_cancelled
from mucomp.recipes import TrainRecipe

#: The optimisers a recipe or a method may name, each with its fixed settings (the learning rate
#: comes from the run):
#:
#: - ``"sgd"``: SGD, momentum 0.9, weight decay 5e-4 (mucomp's default for the CNNs and ResNets);
#: - ``"sgd_plain"``: SGD without momentum or weight decay (NegGrad+ as its authors run it);
#: - ``"adam"``: Adam, torch's defaults (betas 0.9 / 0.999), no weight decay (Bad Teacher, UNSIR);
#: - ``"adamw"``: AdamW, weight decay 0.01 (the recipe of the published ViT-B/16 CIFAR-10 files:
#:   Yurim0507/vit-base-16-cifar10-unlearning model card, "AdamW, lr 5e-5, weight decay 0.01";
#:   Loshchilov and Hutter, ICLR 2019), the default for the vision transformers.
OPTIMIZERS = ("sgd", "sgd_plain", "adam", "adamw")


def make_optimizer(
    name: str, params, lr: float, *, momentum: float | None = None, weight_decay: float | None = None,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Optimiser ``name`` (one of :data:`OPTIMIZERS`) over ``params`` at learning rate ``lr``.

    ``momentum`` / ``weight_decay`` override the preset's (a training recipe passes its own);
    ``nesterov`` applies to ``"sgd"`` only.
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9 if momentum is None else momentum,
                               weight_decay=5e-4 if weight_decay is None else weight_decay, nesterov=nesterov)
    if name == "sgd_plain":
        return torch.optim.SGD(params, lr=lr, momentum=momentum or 0.0, weight_decay=weight_decay or 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay or 0.0)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01 if weight_decay is None else weight_decay)
    raise ValueError(f"unknown optimiser {name!r}; choose one of {', '.join(OPTIMIZERS)}")


@contextlib.contextmanager
def fixed_torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, then restore the process's setting.

    For work whose weights must not depend on the caller's thread count (the references: see
    :func:`mucomp.settings.reference_threads`). The setting is process-wide, as torch's is.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``seed``: every shuffle and random draw of a run uses it."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def augment_batch(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, per image, from ``generator``."""
    n, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, dy : dy + height, dx : dx + width]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def iterate_batches(
    split: Split,
    indices: np.ndarray,
    batch_size: int,
    generator: torch.Generator | None,
    *,
    labels: np.ndarray | torch.Tensor | None = None,
    augment: bool = False,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    augment_generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(images [b, C, H, W] float32, labels [b] int64)`` over ``indices``.

    With a ``generator`` the order is shuffled from it, else kept. ``labels`` (aligned with
    ``indices``) replaces the true labels, e.g. for random relabelling. The last batch may be
    smaller. ``channels_last``: the images in channels-last memory order (what an architecture
    that asks for it, :func:`mucomp.models.channels_last`, is trained on). ``augment``: every
    batch through :func:`augment_batch`, its crops and flips drawn from ``augment_generator``
    (default: ``generator``, else a generator seeded 0).
    """
    indices = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
    targets = split.labels[indices] if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if targets.shape != indices.shape:
        raise ValueError("labels must be aligned with indices")
    order = torch.randperm(indices.numel(), generator=generator) if generator is not None else torch.arange(indices.numel())
    for start in range(0, order.numel(), batch_size):
        pick = order[start : start + batch_size]
        images = split.normalize(split.images[indices[pick]])
        if augment:
            draws = augment_generator if augment_generator is not None else generator
            images = augment_batch(images, draws if draws is not None else make_generator(0))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images.to(device), targets[pick].to(device)


def _batch_length(args: tuple, kwargs: dict) -> int:
    """Samples in a forward call: ``shape[0]`` of its first tensor argument (0 when none)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return int(value.shape[0]) if value.dim() else 1
    return 0


class CostCounter:
    """Hardware-independent cost of one run, counted in samples.

    :meth:`watch` registers a forward pre-hook on a top-level module; each forward of it adds
    its batch length (``inputs[0].shape[0]``) to :attr:`samples_forwarded`. Forwards of a
    *trained* module with grad enabled are also kept as pending; :meth:`stepped` (called by
    :class:`Stepper` after each optimiser step) moves the pending count to
    :attr:`samples_backpropagated`, so samples whose loss is never stepped are not counted
    there. Inside :meth:`paused` nothing is counted (evaluation passes, warm-up). Copies of a
    watched module (``copy.deepcopy``) carry the hook but are ignored by it. :meth:`close`
    removes every hook.
    """

    def __init__(self) -> None:
        self.samples_forwarded = 0
        self.samples_backpropagated = 0
        self._pending = 0
        self._paused = 0
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def watch(self, module: nn.Module, *, trained: bool) -> None:
        """Count the forwards of ``module`` (``trained``: its grad-enabled forwards are stepped)."""

        def count(called: nn.Module, args: tuple, kwargs: dict) -> None:
            if called is not module or self._paused:
                return None  # a deep copy of the watched module carries this hook: not ours
            n = _batch_length(args, kwargs)
            self.samples_forwarded += n
            if trained and torch.is_grad_enabled():
                self._pending += n
            return None

        self._handles.append(module.register_forward_pre_hook(count, with_kwargs=True))

    def stepped(self) -> None:
        """An optimiser step was taken: the pending grad-enabled samples were back-propagated."""
        self.samples_backpropagated += self._pending
        self._pending = 0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Forwards inside are not counted."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    @contextlib.contextmanager
    def unstepped(self) -> Iterator[None]:
        """Grad-enabled forwards inside are counted as forwarded but never as back-propagated
        (e.g. a saliency gradient that is not stepped)."""
        pending, backpropagated = self._pending, self.samples_backpropagated
        try:
            yield
        finally:
            self._pending = pending if self.samples_backpropagated == backpropagated else 0

    def close(self) -> None:
        """Remove the hooks (idempotent); the counts stay."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class Stepper:
    """Applies one loss to a model: checks, backward, mask, clipping, optimiser step.

    Parameters
    ----------
    model, optimizer:
        What is trained and how.
    clip_grad_norm:
        Clip the global gradient norm to this value before each step (``None`` or 0: no
        clipping).
    grad_mask:
        Parameter name -> 0/1 tensor of the parameter's shape: only the weights where it is 1
        move (see :meth:`set_grad_mask`).
    cancelled:
        Called before every step; ``True`` stops the run with status ``"cancelled"``.
    cost:
        Told after every step (:meth:`CostCounter.stepped`), if given.

    A loss that is NaN or infinite stops the run with status ``"diverged"``, naming the epoch
    (set :attr:`epoch` as the loop advances) and the learning rate.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        clip_grad_norm: float | None = None,
        grad_mask: dict[str, torch.Tensor] | None = None,
        cancelled: CancelFn | None = None,
        cost: CostCounter | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.clip_grad_norm = clip_grad_norm
        self.cancelled = cancelled
        self.cost = cost
        self.epoch = 1
        self.steps = 0
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._masked: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self._loss_sum = 0.0
        self._loss_count = 0
        if grad_mask:
            self.set_grad_mask(grad_mask)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_grad_mask(self, grad_mask: dict[str, torch.Tensor] | None, *, restore: bool = True) -> None:
        """Restrict updates to the weights where ``grad_mask`` is 1 (``None``: no restriction).

        Gradients outside the mask are zeroed before clipping and the step, and after each step
        the weights outside the mask are put back to their values at this call, so that weight
        decay and momentum cannot move them either. ``restore=False`` masks the gradients only:
        the optimiser's weight decay (and the momentum it feeds) still moves the weights outside
        the mask, as code that only multiplies ``param.grad`` by a mask does. Parameters the mask
        does not name are free.
        """
        self._masked = []
        if not grad_mask:
            return
        named = dict(self.model.named_parameters())
        unknown = sorted(set(grad_mask) - set(named))
        if unknown:
            raise ValueError(f"grad_mask names parameters the model does not have: {unknown[:5]}")
        for name, mask in grad_mask.items():
            param = named[name]
            if tuple(mask.shape) != tuple(param.shape):
                raise ValueError(f"grad_mask[{name!r}] has shape {tuple(mask.shape)}, the parameter {tuple(param.shape)}")
            keep = mask.to(device=param.device, dtype=torch.bool)
            self._masked.append((param, keep, param.detach().clone() if restore else None))

    def begin_epoch(self, epoch: int) -> None:
        """Start counting a new epoch: messages name it, :attr:`epoch_loss` restarts."""
        self.epoch = epoch
        self._loss_sum, self._loss_count = 0.0, 0

    @property
    def epoch_loss(self) -> float:
        """Mean of the losses stepped so far in this epoch (NaN before the first step)."""
        return self._loss_sum / self._loss_count if self._loss_count else float("nan")

    def check_cancelled(self) -> None:
        stop_if_cancelled(self.cancelled, f"during epoch {self.epoch}")

    def step(self, loss: torch.Tensor) -> float:
        """Back-propagate ``loss`` and take one optimiser step; returns the loss as a float."""
        self.check_cancelled()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RunStopped(
                "diverged",
                f"the loss became {value} in epoch {self.epoch} at learning rate {self.lr:g}; "
                "lower the learning rate or the number of epochs",
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for param, keep, _frozen in self._masked:
            if param.grad is not None:
                param.grad.masked_fill_(~keep, 0.0)
        if self.clip_grad_norm:
            nn.utils.clip_grad_norm_(self._params, self.clip_grad_norm)
        self.optimizer.step()
        if self._masked:
            with torch.no_grad():
                for param, keep, frozen in self._masked:
                    if frozen is not None:
                        param.copy_(torch.where(keep, param, frozen))
        self.steps += 1
        if self.cost is not None:
            self.cost.stepped()
        self._loss_sum += value
        self._loss_count += 1
        return value

    def check_weights(self) -> None:
        """Stop as diverged if any weight is no longer finite (called once per epoch)."""
        for param in self._params:
            if not torch.isfinite(param).all():
                raise RunStopped(
                    "diverged",
                    f"weights became NaN or infinite in epoch {self.epoch} at learning rate "
                    f"{self.lr:g}; lower the learning rate or the number of epochs",
                )


def sgd(
    model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False
) -> torch.optim.SGD:
    """The default optimiser: SGD with momentum 0.9 and weight decay 5e-4 (Nesterov if asked)."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def recipe_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    """The optimiser a training recipe prescribes (SGD with its momentum, or AdamW)."""
    if recipe.optimizer == "adamw":
        return make_optimizer("adamw", model.parameters(), recipe.lr, weight_decay=recipe.weight_decay)
    return sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.nesterov)


def epoch_scheduler(
    optimizer: torch.optim.Optimizer, epochs: int, schedule: str, warmup_epochs: int = 0, eta_min: float = 0.0
):
    """A per-epoch learning-rate schedule: cosine annealing to ``eta_min`` (an absolute rate, 0 by
    default; one above the starting rate makes the cosine rise to it, as torch's
    ``CosineAnnealingLR`` does), or ``None`` for constant; with ``warmup_epochs``, a linear warm-up
    (``lr / (warmup_epochs + 1)`` up to ``lr``) first."""
    if warmup_epochs <= 0:
        if schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min)
        return None
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup_epochs + 1), end_factor=1.0, total_iters=warmup_epochs
    )
    if schedule == "cosine":
        rest = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - warmup_epochs, eta_min=eta_min)
    else:
        rest = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, rest], milestones=[warmup_epochs])


EpochEndFn = Callable[[int, float], None]


def epoch_loop(
    stepper: Stepper,
    epochs: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    end_of_epoch: EpochEndFn | None = None,
) -> Iterator[int]:
    """Yield the epoch numbers ``1..epochs``; the caller runs one epoch's steps per number.

    The bookkeeping every training loop shares happens here and nowhere else: before an epoch
    the stepper learns its number (messages name it) and restarts its loss mean; after it the
    weights are checked for NaN / inf, the scheduler steps and ``end_of_epoch(epoch,
    mean_loss)`` runs (records, progress). An exception in the caller's epoch ends the loop.
    """
    for epoch in range(1, epochs + 1):
        stepper.begin_epoch(epoch)
        yield epoch
        stepper.check_weights()
        if scheduler is not None:
            scheduler.step()
        if end_of_epoch is not None:
            end_of_epoch(epoch, stepper.epoch_loss)


@dataclass
class TrainOutcome:
    """What :func:`train` did: epochs run, optimiser steps, mean loss of the last epoch, seconds."""

    epochs: int
    steps: int
    last_loss: float
    seconds: float


def train(
    model: nn.Module,
    split: Split,
    indices: np.ndarray,
    recipe: TrainRecipe,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
    cancelled: CancelFn | None = None,
) -> TrainOutcome:
    """Train ``model`` in place with cross-entropy on ``split[indices]``.

    Data order and augmentation come from ``seed`` alone, so the same model, data, recipe and
    seed give the same weights. ``progress(epoch, total, loss=...)`` is called after each epoch.
    Raises :class:`RunStopped` on divergence or cancellation.
    """
    generator = make_generator(seed)
    to_memory_format(model.to(device)).train()
    optimizer = recipe_optimizer(model, recipe)
    scheduler = epoch_scheduler(optimizer, recipe.epochs, recipe.schedule, recipe.warmup_epochs)
    stepper = Stepper(model, optimizer, clip_grad_norm=recipe.clip_grad_norm, cancelled=cancelled)
    start = time.perf_counter()

    def end_of_epoch(epoch: int, loss: float) -> None:
        if progress is not None:
            progress(epoch, recipe.epochs, loss=loss)

    for _epoch in epoch_loop(stepper, recipe.epochs, scheduler, end_of_epoch):
        for images, labels in iterate_batches(
            split, indices, recipe.batch_size, generator, augment=recipe.augment, device=device,
            channels_last=channels_last(model),
        ):
            stepper.step(F.cross_entropy(model(images), labels))
    model.eval()
    return TrainOutcome(recipe.epochs, stepper.steps, stepper.epoch_loss, time.perf_counter() - start)
