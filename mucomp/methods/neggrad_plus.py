"""NegGrad+ (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning", the SCRUB
paper's strengthened negative-gradient baseline): one loss over paired batches, a retain batch
and a forget batch at each step,

    alpha * (CE(retain) + wd/2 * ||theta - theta_0||^2) - (1 - alpha) * CE(forget),

where theta_0 are the starting weights (``wd`` = 0 by default: no pull).

As the authors' notebook runs it (meghdadk/SCRUB ``MIA_experiments.ipynb``, the NegGrad+ cell:
``ng_alpha 0.9999``, ``ng_epochs 5``, ``ng_lr 0.01``, ``retain_bs 32``, ``forget_bs 16``, then
``negative_grad`` -> ``train_negrad``, ``thirdparty/repdistiller/helper/loops.py``): the retain set
walked once per epoch in shuffled batches of 32 with the forget set's batches of 16 cycled beside
it (the first pass cached, as ``itertools.cycle`` does), plain SGD without momentum or weight
decay, the model in **train** mode (batch-norm batch statistics), no pull towards theta_0. That
notebook forgets 100 images of class 5; its values are reused for a whole class on CIFAR-10 and
Fashion-MNIST. The same repository's ``run_neggrad_epoch`` (eval mode and the pull) is defined
there but not called. A vision transformer takes Adam, also without weight decay (mucomp's
choice, not the authors').

Digits defaults (mucomp's own, tuned in eval mode with the pull, kept with ``frozen_bn``):
unclipped, the ascent is bistable on the small CNN (at alpha 0.95 nothing is forgotten in 5
epochs; at alpha <= 0.9 and lr >= 0.03 the forget class collapses and the loss runs to NaN an
epoch later, taking the other classes with it). A gradient-norm clip (0.05, as GA's digits
defaults) turns the ascent into a steady walk: alpha 0.9, lr 0.1, 6 epochs forget classes 1, 3
and 8 completely at TRA 0.90-0.94.
"""

from __future__ import annotations

from itertools import cycle

import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import Param
from mucomp.methods.registry import register
from mucomp.methods.sources import FMNIST_CNN_TUNED, VIT_B16_RECIPE, VIT_DIGITS_TUNED, reused_for_fashion_mnist

AUTHORS = ("NegGrad+ authors: meghdadk/SCRUB MIA_experiments.ipynb NegGrad+ cell (ng_epochs 5, ng_lr 0.01, "
           "ng_alpha 0.9999, retain_bs 32, forget_bs 16) -> thirdparty/repdistiller/helper/loops.py train_negrad "
           "(train mode, no pull, SGD without weight decay)")
PUBLISHED = {"epochs": 5, "lr": 0.01, "batch_size": 32, "forget_batch_size": 16, "alpha": 0.9999, "weight_decay": 0.0,
             "clip_grad_norm": 0.0, "frozen_bn": False}
#: mucomp's own small-model settings keep the eval-mode, pulled variant they were tuned with.
FROZEN = {"weight_decay": 5e-4, "frozen_bn": True}


def distance_to_start(model: torch.nn.Module, start: torch.nn.Module) -> torch.Tensor:
    """``sum ||p - p_0||^2`` over the trainable parameters (scalar, differentiable in ``model``)."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for p, p0 in zip(model.parameters(), start.parameters(), strict=True):
        if p.requires_grad:
            total = total + (p - p0).pow(2).sum()
    return total


@register(
    "neggrad_plus",
    defaults={
        "digits": {"epochs": 6, "lr": 0.1, "batch_size": 32, "forget_batch_size": 32, "alpha": 0.9,
                   "clip_grad_norm": 0.05, **FROZEN},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 1, "batch_size": 128, "forget_batch_size": 64, "alpha": 0.99},
        "vit_digits": {"epochs": 3, "lr": 5e-4, "batch_size": 32, "forget_batch_size": 32, "alpha": 0.95,
                       "clip_grad_norm": 0.0, **FROZEN},
        "vit_b16_cifar": {"epochs": 5, "lr": 1e-5, "batch_size": 64, "forget_batch_size": 64, "alpha": 0.9999,
                          "clip_grad_norm": 0.0, **FROZEN},
    },
    default_sources={"cifar10": AUTHORS, "fashion_mnist": reused_for_fashion_mnist(AUTHORS), "fmnist_cnn": {name: FMNIST_CNN_TUNED for name in ("epochs", "batch_size", "forget_batch_size", "alpha")} | {"*": reused_for_fashion_mnist(AUTHORS)},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
    # The authors' plain SGD (the pull towards theta_0 replaces weight decay); a ViT takes Adam,
    # also without weight decay, for the same reason.
    optimizer={"*": "sgd_plain", "vit": "adam"},
    params=[
        Param("alpha", "float", min=0.0, max=1.0, help="weight of the retain loss; 1 - alpha weighs the forget ascent"),
        Param("weight_decay", "float", min=0.0, max=1.0,
              help="pull towards the starting weights (wd/2 * squared distance; 0: none, as published)"),
        Param("forget_batch_size", "int", min=1, max=8192, help="batch size of the forget batches cycled beside the retain batches"),
        Param("frozen_bn", "bool", help="run in eval mode (batch-norm statistics frozen) instead of the authors' train mode"),
        Param("clip_grad_norm", "float", min=0.0, max=1e6,
              help="clip the global gradient norm to this before each step (0: no clipping, as published)"),
    ],
)
def neggrad_plus(ctx: UnlearnContext) -> None:
    """Descend on the retain loss and ascend on the forget loss, over paired batches."""
    alpha, wd = ctx.hyper["alpha"], ctx.hyper["weight_decay"]
    start = ctx.teacher() if wd else None  # the frozen starting weights theta_0, for the pull
    ctx.set_clip_grad_norm(ctx.hyper["clip_grad_norm"])
    for _epoch in ctx.epochs():  # train mode, as the authors' train_negrad
        if ctx.hyper["frozen_bn"]:
            ctx.model.eval()
        forget_batches = cycle(list(ctx.forget_batches(ctx.hyper["forget_batch_size"])))
        for (x_r, y_r), (x_f, y_f) in zip(ctx.retain_batches(), forget_batches, strict=False):
            retain = F.cross_entropy(ctx.model(x_r), y_r)
            if wd:
                retain = retain + wd / 2 * distance_to_start(ctx.model, start)
            ctx.step(alpha * retain - (1 - alpha) * F.cross_entropy(ctx.model(x_f), y_f))
