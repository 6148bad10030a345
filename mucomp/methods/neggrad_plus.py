"""NegGrad+ (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning", the SCRUB
paper's strengthened negative-gradient baseline): one loss over paired batches, a retain batch
and a forget batch at each step,

    alpha * (CE(retain) + wd/2 * ||theta - theta_0||^2) - (1 - alpha) * CE(forget),

where theta_0 are the starting weights. As in the authors' code (meghdadk/SCRUB,
``MIA_experiments.ipynb``: ``run_neggrad_epoch`` / ``negative_grad``): the retain set is walked
once per epoch and the forget set cycled beside it, plain SGD without momentum or weight decay
(the pull towards theta_0 replaces it), and the model kept in eval mode (batch-norm statistics
frozen). The optimiser is declared in ``@register`` (``sgd_plain``); a vision transformer takes
Adam, also without weight decay (transformers are trained with adaptive optimisers; mucomp's
choice, not the authors').

CIFAR-10 / Fashion-MNIST defaults: 5 epochs at lr 0.01, batch 128, alpha 0.9999, wd 5e-4 (the
authors' CIFAR setting in that notebook: ``ng_epochs 5``, ``ng_lr 0.01``, ``ng_alpha 0.9999``,
``--batch-size 128 --weight-decay 0.0005``).

Digits defaults: unclipped, the ascent is bistable on the small CNN (at alpha 0.95 nothing is
forgotten in 5 epochs; at alpha <= 0.9 and lr >= 0.03 the forget class collapses and the loss
runs to NaN an epoch later, taking the other classes with it). mucomp's digits defaults add a
gradient-norm clip (0.05, as GA's digits defaults do) that turns the ascent into a steady walk:
alpha 0.9, lr 0.1, 6 epochs forget classes 1, 3 and 8 completely at TRA 0.90-0.94.
"""

from __future__ import annotations

from itertools import cycle

import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import Param
from mucomp.methods.registry import register
from mucomp.methods.sources import VIT_B16_RECIPE, VIT_DIGITS_TUNED

AUTHORS = "NegGrad+ authors: meghdadk/SCRUB, MIA_experiments.ipynb (ng_epochs, ng_lr, ng_alpha, batch 128, wd 5e-4)"
PUBLISHED = {"epochs": 5, "lr": 0.01, "batch_size": 128, "alpha": 0.9999, "weight_decay": 5e-4, "clip_grad_norm": 0.0}


def distance_to_start(model: torch.nn.Module, start: torch.nn.Module) -> torch.Tensor:
    """``sum ||p - p_0||^2`` over the trainable parameters (scalar, differentiable in ``model``)."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for p, p0 in zip(model.parameters(), start.parameters(), strict=True):
        if p.requires_grad:
            total = total + (p - p0).pow(2).sum()
    return total


@register(
    "neggrad_plus",
    label="NegGrad+",
    defaults={
        "digits": {"epochs": 6, "lr": 0.1, "batch_size": 32, "alpha": 0.9, "weight_decay": 5e-4, "clip_grad_norm": 0.05},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
        "vit_digits": {"epochs": 3, "lr": 5e-4, "batch_size": 32, "alpha": 0.95, "weight_decay": 5e-4, "clip_grad_norm": 0.0},
        "vit_b16_cifar": {"epochs": 5, "lr": 1e-5, "batch_size": 64, "alpha": 0.9999, "weight_decay": 5e-4, "clip_grad_norm": 0.0},
    },
    default_sources={"cifar10": AUTHORS, "fashion_mnist": AUTHORS, "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
    # The authors' plain SGD (the pull towards theta_0 replaces weight decay); a ViT takes Adam,
    # also without weight decay, for the same reason.
    optimizer={"*": "sgd_plain", "vit": "adam"},
    params=[
        Param("alpha", "float", min=0.0, max=1.0, help="weight of the retain loss; 1 - alpha weighs the forget ascent"),
        Param("weight_decay", "float", min=0.0, max=1.0, help="pull towards the starting weights (wd/2 * squared distance)"),
        Param("clip_grad_norm", "float", min=0.0, max=1e6,
              help="clip the global gradient norm to this before each step (0: no clipping, as published)"),
    ],
)
def neggrad_plus(ctx: UnlearnContext) -> None:
    """Descend on the retain loss and ascend on the forget loss, over paired batches."""
    start = ctx.teacher()  # the frozen starting weights theta_0
    alpha, wd = ctx.hyper["alpha"], ctx.hyper["weight_decay"]
    ctx.set_clip_grad_norm(ctx.hyper["clip_grad_norm"])
    for _epoch in ctx.epochs():
        ctx.model.eval()
        for (x_r, y_r), (x_f, y_f) in zip(ctx.retain_batches(), cycle(list(ctx.forget_batches())), strict=False):
            retain = F.cross_entropy(ctx.model(x_r), y_r) + wd / 2 * distance_to_start(ctx.model, start)
            ctx.step(alpha * retain - (1 - alpha) * F.cross_entropy(ctx.model(x_f), y_f))
