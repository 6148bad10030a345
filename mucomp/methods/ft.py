"""FT, fine-tuning: keep training on the retain set only; the forget class fades by
catastrophic forgetting (often only partly: FT is known to under-forget).

CIFAR-10 / Fashion-MNIST defaults (class-wise forgetting on the published checkpoints): 10 epochs
at lr 0.01, batch 128, the published comparator's class-wise defaults
(gnueaj/Machine-Unlearning-Comparator, ``frontend/src/utils/config/unlearning.ts``). Random and
index forget sets on CIFAR-10: 10 epochs at lr 0.01, the Unlearn-Sparse authors' random-forgetting
command (OPTML-Group/Unlearn-Sparse ``README.MD``).
"""

from __future__ import annotations

import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import register
from mucomp.methods.sources import (
    COMPARATOR_CLASSWISE,
    FMNIST_CNN_TUNED,
    SPARSE_RANDOM,
    VIT_B16_RECIPE,
    VIT_DIGITS_TUNED,
    reused_for_fashion_mnist,
)

PUBLISHED = {"epochs": 10, "lr": 0.01, "batch_size": 128}


@register(
    "ft",
    label="Fine-tuning (FT)",
    defaults={
        "digits": {"epochs": 10, "lr": 0.07, "batch_size": 32},
        "cifar10": PUBLISHED,
        "cifar10:random": {"epochs": 10, "lr": 0.01},
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 3, "lr": 0.03},
        "vit_digits": {"epochs": 5, "lr": 4e-3, "batch_size": 32},
        "vit_b16_cifar": {"epochs": 3, "lr": 2e-5, "batch_size": 64},
    },
    default_sources={"cifar10": COMPARATOR_CLASSWISE, "cifar10:random": {"epochs": SPARSE_RANDOM, "lr": SPARSE_RANDOM},
                     "fashion_mnist": reused_for_fashion_mnist(COMPARATOR_CLASSWISE), "fmnist_cnn": {"epochs": FMNIST_CNN_TUNED, "lr": FMNIST_CNN_TUNED, "*": reused_for_fashion_mnist(COMPARATOR_CLASSWISE)},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
)
def fine_tune(ctx: UnlearnContext) -> None:
    """Fine-tune on the retain set only, with cross-entropy."""
    for _epoch in ctx.epochs():
        for images, labels in ctx.retain_batches():
            ctx.step(F.cross_entropy(ctx.model(images), labels))
