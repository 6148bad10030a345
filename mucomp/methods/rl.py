"""RL, random labels, as the published comparator runs it (gnueaj/Machine-Unlearning-Comparator,
``backend/app/threads/unlearn_RL_thread.py``): the retain set and the forget set in one shuffled
stream, each forget image relabelled with a random class other than its own (drawn anew every
epoch). This is the class-wise baseline of the system mucomp compares with; SalUn's own random
labelling (forget pass first, labels over all classes) is :mod:`mucomp.methods.salun`.

mucomp draws the labels from the experiment seed; the comparator reseeds from the clock.

CIFAR-10 / Fashion-MNIST defaults (class-wise forgetting on the published checkpoints): 3 epochs at
lr 0.001, batch 64, the comparator's class-wise defaults (``frontend/src/utils/config/unlearning.ts``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import register
from mucomp.methods.sources import (
    COMPARATOR_CLASSWISE,
    FMNIST_CNN_TUNED,
    VIT_B16_RECIPE,
    VIT_DIGITS_TUNED,
    reused_for_fashion_mnist,
)

PUBLISHED = {"epochs": 3, "lr": 0.001, "batch_size": 64}


def random_other_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each label ``[n]`` a class drawn uniformly from the ``num_classes - 1`` other ones."""
    offsets = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels + offsets) % num_classes


def relabelled_epoch(ctx: UnlearnContext) -> None:
    """One pass over D_r and D_f together, D_f with fresh random other labels."""
    forget, retain = ctx.forget_indices, ctx.retain_indices
    labels = ctx.split.labels
    forget_labels = random_other_labels(labels[torch.from_numpy(forget)], ctx.num_classes, ctx.generator)
    mixed = np.concatenate([forget, retain])
    mixed_labels = torch.cat([forget_labels, labels[torch.from_numpy(retain)]])
    for images, targets in ctx.batches(mixed, labels=mixed_labels):
        ctx.step(F.cross_entropy(ctx.model(images), targets))


@register(
    "rl",
    defaults={
        "digits": {"epochs": 2, "lr": 0.02, "batch_size": 32},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 2},
        "vit_digits": {"epochs": 2, "lr": 1e-3, "batch_size": 32},
        "vit_b16_cifar": {"epochs": 3, "lr": 1e-5, "batch_size": 64},
    },
    default_sources={"cifar10": COMPARATOR_CLASSWISE, "fashion_mnist": reused_for_fashion_mnist(COMPARATOR_CLASSWISE), "fmnist_cnn": {"epochs": FMNIST_CNN_TUNED, "lr": FMNIST_CNN_TUNED, "*": reused_for_fashion_mnist(COMPARATOR_CLASSWISE)},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
)
def random_labels(ctx: UnlearnContext) -> None:
    """Train on the retain set plus the forget set relabelled with random other classes."""
    for _epoch in ctx.epochs():
        relabelled_epoch(ctx)
