"""SSD, selective synaptic dampening (Foster et al., AAAI 2024, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening"): no training. Two importance estimates per
parameter, the mean over batches of the squared gradient of the cross-entropy (a diagonal
Fisher approximation), one over the whole training set ``I_D`` and one over the forget set
``I_f``; every parameter with ``I_f > alpha * I_D`` is multiplied by
``min(lambda * I_D / I_f, 1)``.

As in the authors' code (if-loops/selective-synaptic-dampening, ``ssd.py``
``ParameterPerturber.calc_importance`` / ``modify_weight`` and ``ssd_tuning`` in
``forget_full_class_strategies.py``): the model in eval mode, batches in data-set order, the mean
taken over the number of batches. SSD is deterministic: the unlearning seed changes nothing.
``epochs`` is the number of dampening rounds (1, as published); ``lr`` is unused (the published
code builds an optimiser only to clear gradients); ``batch_size`` sizes the importance passes.

CIFAR-10 / Fashion-MNIST defaults: lambda 1, alpha 10 (``dampening_constant`` and
``selection_weighting`` of the authors' ResNet runs), batch 256. ViT-B/16: alpha 5, the authors'
``selection_weighting = 10 * model_size_scaler`` with ``model_size_scaler = 0.5`` for their ViT
(``forget_full_class_main.py``). ``vit_digits``: alpha 10 (alpha 5 dampens too much there: TRA
0.89 against 0.97 on class 3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import Param
from mucomp.methods.registry import register
from mucomp.methods.sources import SSD_AUTHORS_VIT, VIT_DIGITS_TUNED

AUTHORS = "SSD authors: if-loops/selective-synaptic-dampening (dampening_constant 1, selection_weighting 10)"
PUBLISHED = {"epochs": 1, "lr": 0.1, "batch_size": 256, "dampening": 1.0, "selection": 10.0}


def importances(ctx: UnlearnContext, indices: np.ndarray) -> dict[str, torch.Tensor]:
    """Parameter name -> mean over batches of the squared batch gradient of the cross-entropy."""
    named = [(name, p) for name, p in ctx.model.named_parameters() if p.requires_grad]
    sums = {name: torch.zeros_like(p) for name, p in named}
    batches = 0
    for images, labels in ctx.batches(indices, shuffle=False):
        ctx.backward(F.cross_entropy(ctx.model(images), labels))
        for name, p in named:
            if p.grad is not None:
                sums[name] += p.grad.detach().pow(2)
        batches += 1
    ctx.model.zero_grad(set_to_none=True)
    return {name: total / max(batches, 1) for name, total in sums.items()}


def dampen(model: torch.nn.Module, full: dict[str, torch.Tensor], forget: dict[str, torch.Tensor],
           dampening: float, selection: float) -> None:
    """Scale the parameters more important to the forget set (``I_f > selection * I_D``) by
    ``min(dampening * I_D / I_f, 1)``, in place."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in full:
                continue
            selected = forget[name] > selection * full[name]
            factor = (dampening * full[name] / forget[name]).clamp(max=1.0)
            p[selected] = p[selected] * factor[selected]


@register(
    "ssd",
    label="Selective synaptic dampening (SSD)",
    defaults={
        "digits": {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 10.0},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
        "vit_digits": {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 10.0},
        "vit_b16_cifar": {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 5.0},
    },
    default_sources={"cifar10": AUTHORS, "fashion_mnist": AUTHORS, "vit_b16_cifar": SSD_AUTHORS_VIT, "vit_digits": VIT_DIGITS_TUNED},
    params=[
        Param("dampening", "float", min=0.0, max=1e3, exclusive_min=True,
              help="lambda: how strongly a selected parameter is dampened (smaller dampens more)"),
        Param("selection", "float", min=0.0, max=1e6, exclusive_min=True,
              help="alpha: a parameter is selected when its forget importance exceeds alpha times its overall one"),
    ],
)
def selective_synaptic_dampening(ctx: UnlearnContext) -> None:
    """Dampen the weights that matter more to the forget set than to all data (no random choice: the seed changes nothing)."""
    everything = np.arange(len(ctx.split))
    for _epoch in ctx.epochs():
        ctx.model.eval()
        forget = importances(ctx, ctx.forget_indices)
        full = importances(ctx, everything)
        dampen(ctx.model, full, forget, ctx.hyper["dampening"], ctx.hyper["selection"])
