"""GA, gradient ascent: maximise the cross-entropy of the forget set (descend on its negative),
with the global gradient norm clipped so that one step cannot blow the weights up.

CIFAR-10 / Fashion-MNIST defaults (class-wise forgetting on the published checkpoints): 7 epochs
at lr 1e-4, batch 256, the published comparator's class-wise defaults
(gnueaj/Machine-Unlearning-Comparator, ``frontend/src/utils/config/unlearning.ts``); gradient-norm
clip 100 as in that comparator's backend (``backend/app/config/settings.py``, ``MAX_GRAD_NORM``).
Random and index forget sets on CIFAR-10: 5 epochs at lr 1e-4, the Unlearn-Sparse authors'
random-forgetting command (OPTML-Group/Unlearn-Sparse ``README.MD``), on randomly cropped and
flipped forget batches as that repository's loaders give them (the comparator's class-wise GA does
not augment); batch and clip as above.

Digits defaults: a confident model gives tiny ascent gradients at first, then the forget class
collapses within a few steps and drags the other classes with it. A tight clip (0.025) with a
larger lr (0.05) turns the ascent into a walk of nearly constant step length: the start is quick
and the collapse slow, so the epochs where the class is forgotten but the rest still works form
a wide window (steps 57-67 for class 3; 12 epochs = step 60).
"""

from __future__ import annotations

import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import AUGMENT, Param
from mucomp.methods.registry import register
from mucomp.methods.sources import (
    COMPARATOR_CLASSWISE,
    COMPARATOR_MAX_GRAD_NORM,
    COMPARATOR_NO_AUGMENT,
    FMNIST_CNN_TUNED,
    SPARSE_AUGMENT,
    SPARSE_RANDOM,
    VIT_B16_RECIPE,
    VIT_DIGITS_TUNED,
    reused_for_fashion_mnist,
)

PUBLISHED = {"epochs": 7, "lr": 1e-4, "batch_size": 256, "clip_grad_norm": 100.0, "augment": False}
SOURCES = {"*": COMPARATOR_CLASSWISE, "clip_grad_norm": COMPARATOR_MAX_GRAD_NORM, "augment": COMPARATOR_NO_AUGMENT}


@register(
    "ga",
    defaults={
        "digits": {"epochs": 12, "lr": 0.05, "batch_size": 32, "clip_grad_norm": 0.025},
        "cifar10": PUBLISHED,
        "cifar10:random": {"epochs": 5, "lr": 1e-4, "augment": True},
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 4, "lr": 6e-4, "clip_grad_norm": 0.5},
        "vit_digits": {"epochs": 6, "lr": 2e-4, "batch_size": 32, "clip_grad_norm": 0.0},
        "vit_b16_cifar": {"epochs": 3, "lr": 5e-6, "batch_size": 64, "clip_grad_norm": 100.0, "augment": False},
    },
    default_sources={"cifar10": SOURCES, "cifar10:random": {"epochs": SPARSE_RANDOM, "lr": SPARSE_RANDOM, "augment": SPARSE_AUGMENT},
                     "fashion_mnist": reused_for_fashion_mnist(SOURCES),
                     "fmnist_cnn": {**reused_for_fashion_mnist(SOURCES), **dict.fromkeys(("epochs", "lr", "clip_grad_norm"), FMNIST_CNN_TUNED)},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
    params=[
        Param("clip_grad_norm", "float", min=0.0, max=1e6,
              help="clip the global gradient norm to this before each step (0: no clipping)"),
        AUGMENT,
    ],
)
def gradient_ascent(ctx: UnlearnContext) -> None:
    """Ascend the cross-entropy of the forget set, clipping the gradient norm."""
    ctx.set_clip_grad_norm(ctx.hyper["clip_grad_norm"])
    for _epoch in ctx.epochs():
        for images, labels in ctx.forget_batches():
            ctx.step(-F.cross_entropy(ctx.model(images), labels))
