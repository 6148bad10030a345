"""SalUn, saliency unlearning (Fan et al., ICLR 2024): find the weights the forget loss is most
sensitive to, then run random-label unlearning that moves only those weights.

Saliency: the absolute gradient of the cross-entropy summed over the forget set, at the starting
weights; the mask keeps the top ``mask_ratio`` share of all weights (ties at the threshold are
kept). Computing it is preparation, reported apart from RT. Updates: RL's epochs (see
:mod:`mucomp.methods.rl`) with every weight outside the mask held fixed.

CIFAR-10 / Fashion-MNIST defaults: 10 epochs at lr 0.013, batch 256, mask ratio 0.5 (the
OPTML-Group/Unlearn-Saliency README example: ``--unlearn_lr 0.013``, ``mask/with_0.5.pt``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import Param, register
from mucomp.methods.rl import relabelled_epoch

PUBLISHED = {"epochs": 10, "lr": 0.013, "batch_size": 256, "mask_ratio": 0.5}


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
    label="Saliency unlearning (SalUn)",
    defaults={
        "digits": {"epochs": 2, "lr": 0.02, "batch_size": 32, "mask_ratio": 0.5},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
    },
    params=[
        Param("mask_ratio", "float", min=0.0, max=1.0, exclusive_min=True,
              help="share of the weights, most salient for the forget loss, that may change"),
    ],
)
def saliency_unlearning(ctx: UnlearnContext) -> None:
    """Random-label unlearning restricted to the weights most salient for the forget loss."""
    with ctx.preparation():
        ctx.set_grad_mask(saliency_mask(ctx, ctx.hyper["mask_ratio"]))
    for _epoch in ctx.epochs():
        relabelled_epoch(ctx)
