"""RL, random labels: each forget image gets a random other class (drawn anew every epoch),
and the model trains on the retain set and the relabelled forget set, shuffled together.

CIFAR-10 / Fashion-MNIST defaults: 10 epochs at lr 0.01, batch 256 (the RL baseline of
OPTML-Group/Unlearn-Saliency: ``--unlearn_epochs 10``, ``--unlearn_lr`` default 0.01).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import register

PUBLISHED = {"epochs": 10, "lr": 0.01, "batch_size": 256}


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
    label="Random labels (RL)",
    defaults={
        "digits": {"epochs": 2, "lr": 0.02, "batch_size": 32},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
    },
)
def random_labels(ctx: UnlearnContext) -> None:
    """Train on the retain set plus the forget set relabelled with random other classes."""
    for _epoch in ctx.epochs():
        relabelled_epoch(ctx)
