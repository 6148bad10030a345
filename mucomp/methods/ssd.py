"""SSD, selective synaptic dampening (Foster et al., AAAI 2024, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening"): no training. Two importance estimates per
parameter, the mean over batches of the squared gradient of the cross-entropy (a diagonal
Fisher approximation), one over the whole training set ``I_D`` and one over the forget set
``I_f``; every parameter with ``I_f > alpha * I_D`` is multiplied by
``min(lambda * I_D / I_f, 1)``.

As in the authors' code (if-loops/selective-synaptic-dampening, ``ssd.py``
``ParameterPerturber.calc_importance`` / ``modify_weight``; ``forget_full_class_main.py`` and
``forget_full_class_strategies.py``): the model in eval mode, the forget importance first, the
mean taken over the number of batches, batches never shuffled. Their order matters, because
each batch's gradient is squared: the authors build D class by class (``get_classwise_ds`` /
``build_retain_forget_sets``: the retained classes in ascending order, each in data-set order,
then the forget class) and walk it in unshuffled batches of 64 (``forget_full_class_main.py``
``-b`` default 64, loaders at the end of that file), so nearly every batch holds one class and
``I_D`` keeps each class's mean gradient. :func:`importance_orders` builds the same orders; for a
random or index forget set it mirrors ``forget_random_main.py`` (``random_split``: a seeded
random order of the retain set, then of the forget set, batch 128 there). SSD is otherwise
deterministic. ``epochs`` is the number of dampening rounds (1, as published); ``lr`` is unused
(the published code builds an optimiser only to clear gradients); ``batch_size`` sizes the
importance passes.

CIFAR-10 defaults: lambda 1, alpha 10 (``dampening_constant`` and ``selection_weighting`` of the
authors' ResNet runs, ``forget_full_class_main.py``), batch 64; random forgetting, batch 128
(``forget_random_main.py``). The repository has no full-class CIFAR-10 or Fashion-MNIST script:
the values are those its main file applies to any data set, reused for Fashion-MNIST. ViT-B/16:
alpha 5, the authors' ``selection_weighting = 10 * model_size_scaler`` with
``model_size_scaler = 0.5`` for their ViT.

Digits (mucomp's own, tuned on class 3 with the authors' class-sorted order; SSD is deterministic):
alpha 6 on ``digits_cnn`` (measured with ``benchmarks/classwise_digits.py``: class 3 UA 0, TRA
0.985; alpha 5-7 forget class 3 entirely, alpha 8 leaves UA 0.15 and alpha 10 forgets nothing;
other classes sit elsewhere on this knife edge: at alpha 6 class 1 keeps UA 0.04 at TRA 0.96,
class 8 falls to TRA 0.68). ``vit_digits``: alpha 12 (class 3: UA 0.015, TRA 0.87; alpha 10 gives
TRA 0.82, alpha 15 keeps UA 0.45).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import Param
from mucomp.methods.registry import register
from mucomp.methods.sources import FMNIST_CNN_TUNED, SSD_AUTHORS_VIT, VIT_DIGITS_TUNED, reused_for_fashion_mnist

AUTHORS = ("SSD authors: if-loops/selective-synaptic-dampening forget_full_class_main.py (dampening_constant 1, "
           "selection_weighting 10, -b 64; class-sorted unshuffled D)")
AUTHORS_RANDOM = "SSD authors: if-loops/selective-synaptic-dampening forget_random_main.py (-b 128; selection_weighting 10)"
PUBLISHED = {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 10.0}


def importance_orders(ctx: UnlearnContext) -> tuple[np.ndarray, np.ndarray]:
    """``(forget order, full-data order)`` of the importance passes, as the authors build them.

    A class forget set: the forget images in data-set order; D = every retained class in
    ascending class order (each in data-set order), then the forget images. A random or index
    set: a random order of the retain set then of the forget set, drawn once from the run's
    generator (``random_split``), the forget pass in the same forget order.
    """
    forget, retain = np.sort(ctx.forget_indices), ctx.retain_indices
    if not ctx.scenario.forget_set.by_class:
        retain = retain[torch.randperm(retain.size, generator=ctx.generator).numpy()]
        forget = forget[torch.randperm(forget.size, generator=ctx.generator).numpy()]
        return forget, np.concatenate([retain, forget])
    labels = ctx.split.labels_np[retain]
    by_class = retain[np.lexsort((retain, labels))]  # ascending class, then data-set order
    return forget, np.concatenate([by_class, forget])


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
    uses=("epochs", "batch_size"),  # no optimiser step: a learning rate would change nothing
    defaults={
        "digits": {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 6.0},
        "cifar10": PUBLISHED,
        "cifar10:random": {"batch_size": 128},
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "selection": 3.0},
        "vit_digits": {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 12.0},
        "vit_b16_cifar": {"epochs": 1, "lr": 0.1, "batch_size": 64, "dampening": 1.0, "selection": 5.0},
    },
    default_sources={"cifar10": AUTHORS, "cifar10:random": {"batch_size": AUTHORS_RANDOM}, "fashion_mnist": reused_for_fashion_mnist(AUTHORS), "fmnist_cnn": {"selection": FMNIST_CNN_TUNED, "*": reused_for_fashion_mnist(AUTHORS)},
                     "vit_b16_cifar": SSD_AUTHORS_VIT, "vit_digits": VIT_DIGITS_TUNED},
    params=[
        Param("dampening", "float", min=0.0, max=1e3, exclusive_min=True,
              help="lambda: how strongly a selected parameter is dampened (smaller dampens more)"),
        Param("selection", "float", min=0.0, max=1e6, exclusive_min=True,
              help="alpha: a parameter is selected when its forget importance exceeds alpha times its overall one"),
    ],
)
def selective_synaptic_dampening(ctx: UnlearnContext) -> None:
    """Dampen the weights that matter more to the forget set than to all data (no random choice: the seed changes nothing)."""
    forget_order, full_order = importance_orders(ctx)
    for _epoch in ctx.epochs():
        ctx.model.eval()
        forget = importances(ctx, forget_order)
        full = importances(ctx, full_order)
        dampen(ctx.model, full, forget, ctx.hyper["dampening"], ctx.hyper["selection"])
