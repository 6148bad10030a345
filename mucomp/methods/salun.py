"""SalUn, saliency unlearning (Fan et al., ICLR 2024): find the weights the forget loss is most
sensitive to, then run SalUn's random-label unlearning moving only those weights.

Saliency: the absolute gradient of the cross-entropy summed over the forget set, at the starting
weights; the mask keeps the top ``mask_ratio`` share of all weights (ties at the threshold are
kept). Computing it is preparation, reported apart from RT. Updates, per epoch, as the authors'
code runs them (OPTML-Group/Unlearn-Saliency, ``Classification/unlearn/RL.py``, the CIFAR-10
branch SalUn uses): first a shuffled pass over the forget set with labels drawn uniformly over ALL
classes (so sometimes the true one), then a shuffled pass over the retain set with the true
labels; every weight outside the mask is held fixed. (The comparator's RL, one mixed stream with
labels from the other classes, is :mod:`mucomp.methods.rl`; the comparator's own SalUn variant
is :mod:`mucomp.methods.salun_comparator`.)

CIFAR-10 / Fashion-MNIST defaults (class-wise forgetting on the published checkpoints): 5 epochs
at lr 0.001, batch 128, unaugmented, the published comparator's class-wise defaults
(gnueaj/Machine-Unlearning-Comparator, ``frontend/src/utils/config/unlearning.ts``), which that
comparator set for its own variant (``salun_comparator``): the SalUn authors publish no class-wise
recipe (their ``Classification/README.md`` gives only the 10 % random example); mask ratio 0.5 as
in that README (``mask/with_0.5.pt``). Random and index forget sets on CIFAR-10: 10 epochs at lr
0.013 with mask ratio 0.5, the authors' example for 10 % random data, on randomly cropped and
flipped batches as their loaders give them (``Classification/dataset.py``, no ``--no-aug``).

Digits defaults: see :data:`DIGITS` (tuned with ``benchmarks/classwise_digits.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import AUGMENT, Param
from mucomp.methods.registry import register
from mucomp.methods.sources import (
    COMPARATOR_CLASSWISE,
    COMPARATOR_NO_AUGMENT,
    FMNIST_CNN_TUNED,
    SALUN_AUGMENT,
    SALUN_RANDOM,
    VIT_B16_RECIPE,
    VIT_DIGITS_TUNED,
    reused_for_fashion_mnist,
)

PUBLISHED = {"epochs": 5, "lr": 0.001, "batch_size": 128, "mask_ratio": 0.5, "augment": False}
SOURCES = {"*": COMPARATOR_CLASSWISE + " (set there for its own SalUn variant, salun_comparator; the SalUn authors "
                "publish no class-wise recipe)",
           "mask_ratio": "SalUn authors: OPTML-Group/Unlearn-Saliency README (mask/with_0.5.pt)",
           "augment": COMPARATOR_NO_AUGMENT}
DIGITS = {"epochs": 2, "lr": 0.02, "batch_size": 32, "mask_ratio": 0.5}


def saliency_mask(ctx: UnlearnContext, ratio: float) -> dict[str, torch.Tensor]:
    """Parameter name -> bool mask of the weights with the largest forget-loss gradient.

    ``ratio`` is the share of all weights kept, in (0, 1]; the gradient is taken in eval mode
    at the current weights, which are not changed.
    """
    model = ctx.model
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    for images, labels in ctx.forget_batches(shuffle=False):
        F.cross_entropy(model(images), labels, reduction="sum").backward()
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    saliency = {name: (p.grad.abs() if p.grad is not None else torch.zeros_like(p)) for name, p in named}
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    flat = torch.cat([s.flatten() for s in saliency.values()])
    keep = max(1, math.ceil(ratio * flat.numel()))
    threshold = torch.topk(flat, keep, sorted=False).values.min()
    return {name: s >= threshold for name, s in saliency.items()}


@register(
    "salun",
    defaults={
        "digits": DIGITS,
        "cifar10": PUBLISHED,
        "cifar10:random": {"epochs": 10, "lr": 0.013, "mask_ratio": 0.5, "augment": True},
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 2},
        "vit_digits": {"epochs": 1, "lr": 3e-3, "batch_size": 32, "mask_ratio": 0.5},
        "vit_b16_cifar": {"epochs": 5, "lr": 1e-5, "batch_size": 64, "mask_ratio": 0.5, "augment": False},
    },
    default_sources={"cifar10": SOURCES,
                     "cifar10:random": {"epochs": SALUN_RANDOM, "lr": SALUN_RANDOM, "mask_ratio": SALUN_RANDOM,
                                        "augment": SALUN_AUGMENT},
                     "fashion_mnist": reused_for_fashion_mnist(SOURCES), "fmnist_cnn": {**reused_for_fashion_mnist(SOURCES), "epochs": FMNIST_CNN_TUNED},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
    params=[
        Param("mask_ratio", "float", min=0.0, max=1.0, exclusive_min=True,
              help="share of the weights, most salient for the forget loss, that may change"),
        AUGMENT,
    ],
)
def saliency_unlearning(ctx: UnlearnContext) -> None:
    """Random-label unlearning restricted to the weights most salient for the forget loss."""
    with ctx.preparation():
        ctx.set_grad_mask(saliency_mask(ctx, ctx.hyper["mask_ratio"]))
    for _epoch in ctx.epochs():
        random_labels = torch.randint(0, ctx.num_classes, (ctx.forget_indices.size,), generator=ctx.generator)
        for images, labels in ctx.forget_batches(labels=random_labels):
            ctx.step(F.cross_entropy(ctx.model(images), labels))
        for images, labels in ctx.retain_batches():
            ctx.step(F.cross_entropy(ctx.model(images), labels))
