"""FT, fine-tuning: keep training on the retain set only; the forget class fades by
catastrophic forgetting (often only partly: FT is known to under-forget).

CIFAR-10 / Fashion-MNIST defaults (class-wise forgetting on the published checkpoints): 10 epochs
at lr 0.01, batch 128, the published comparator's class-wise defaults
(gnueaj/Machine-Unlearning-Comparator, ``frontend/src/utils/config/unlearning.ts``), annealed per
epoch with cosine to an absolute floor of 0.01 and unaugmented, as that comparator's FT runs
(``backend/app/services/unlearn_FT.py``: ``ETA_MIN = 0.01``, ``CosineAnnealingLR(T_max=epochs,
eta_min=ETA_MIN)``, ``AUGMENTATION = False``). At lr 0.01 the cosine is constant; a higher lr
anneals to 0.01, a lower one rises to it, as there. Random and index forget sets on CIFAR-10:
10 epochs at a constant lr 0.01, the Unlearn-Sparse authors' FT command (OPTML-Group/Unlearn-Sparse
``README.MD``), on randomly cropped and flipped batches as that repository's loaders give them.
Digits and ``fmnist_cnn`` keep the constant rate their values were tuned with.
"""

from __future__ import annotations

import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import AUGMENT, LR_FLOOR, LR_SCHEDULE
from mucomp.methods.registry import register
from mucomp.methods.sources import (
    COMPARATOR_CLASSWISE,
    COMPARATOR_FT_SCHEDULE,
    COMPARATOR_NO_AUGMENT,
    FMNIST_CNN_TUNED,
    SPARSE_AUGMENT,
    SPARSE_CONSTANT_LR,
    SPARSE_RANDOM,
    VIT_B16_RECIPE,
    VIT_DIGITS_TUNED,
    reused_for_fashion_mnist,
)

PUBLISHED = {"epochs": 10, "lr": 0.01, "batch_size": 128, "lr_schedule": "cosine", "lr_floor": 0.01, "augment": False}
SOURCES = {"*": COMPARATOR_CLASSWISE, "lr_schedule": COMPARATOR_FT_SCHEDULE, "lr_floor": COMPARATOR_FT_SCHEDULE,
           "augment": COMPARATOR_NO_AUGMENT}
#: What the digits, fmnist_cnn and ViT values were tuned (or set) with: a constant rate, no augmentation.
CONSTANT = {"lr_schedule": "constant", "lr_floor": 0.0, "augment": False}


@register(
    "ft",
    defaults={
        "digits": {"epochs": 10, "lr": 0.07, "batch_size": 32, **CONSTANT},
        "cifar10": PUBLISHED,
        "cifar10:random": {"epochs": 10, "lr": 0.01, "lr_schedule": "constant", "lr_floor": 0.0, "augment": True},
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 3, "lr": 0.03, **CONSTANT},
        "vit_digits": {"epochs": 5, "lr": 4e-3, "batch_size": 32, **CONSTANT},
        "vit_b16_cifar": {"epochs": 3, "lr": 2e-5, "batch_size": 64, **CONSTANT},
    },
    default_sources={"cifar10": SOURCES, "cifar10:random": {"epochs": SPARSE_RANDOM, "lr": SPARSE_RANDOM, "augment": SPARSE_AUGMENT,
                                                            "lr_schedule": SPARSE_CONSTANT_LR, "lr_floor": SPARSE_CONSTANT_LR},
                     "fashion_mnist": reused_for_fashion_mnist(SOURCES),
                     "fmnist_cnn": {**dict.fromkeys(("epochs", "lr", "lr_schedule", "lr_floor"), FMNIST_CNN_TUNED),
                                    "*": reused_for_fashion_mnist(COMPARATOR_CLASSWISE),
                                    "augment": reused_for_fashion_mnist(COMPARATOR_NO_AUGMENT)},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
    params=[LR_SCHEDULE, LR_FLOOR, AUGMENT],
)
def fine_tune(ctx: UnlearnContext) -> None:
    """Fine-tune on the retain set only, with cross-entropy."""
    for _epoch in ctx.epochs():
        for images, labels in ctx.retain_batches():
            ctx.step(F.cross_entropy(ctx.model(images), labels))
