"""Local training recipes of the reference models (and of Retrain), their hash, and how long
training them takes on this machine.

A recipe (:class:`TrainRecipe`) is the data set's (:data:`RECIPES`) or, for an architecture that
is not its data set's default, the architecture's (:data:`ARCH_RECIPES`). Its hash names the cache
folder of the references trained with it. :func:`expected_reference_seconds` says, before any
work, how long both references of a CPU-sized architecture take here. Torch-free (the Home page
reads it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainRecipe:
    """Hyper-parameters of supervised training.

    ``optimizer`` is ``"sgd"`` (with ``momentum``, ``weight_decay`` and ``nesterov``) or
    ``"adamw"`` (with ``weight_decay``); see :data:`OPTIMIZERS`. ``warmup_epochs`` > 0 raises the
    learning rate linearly, per epoch, from ``lr / (warmup_epochs + 1)`` to ``lr`` before the
    schedule runs over the remaining epochs (a transformer trained from scratch needs it).
    """

    epochs: int
    lr: float
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" (to 0 over the run) or "constant"
    augment: bool = False  # random crop (4 px padding) + horizontal flip, for CIFAR-style data
    nesterov: bool = False
    clip_grad_norm: float | None = None  # global gradient-norm clip before each step (None: off)
    optimizer: str = "sgd"
    warmup_epochs: int = 0  # linear warm-up of the learning rate over the first epochs, then the schedule

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        if self.clip_grad_norm is not None and not (self.clip_grad_norm > 0 and math.isfinite(self.clip_grad_norm)):
            raise ValueError(f"clip_grad_norm must be a positive number or None, got {self.clip_grad_norm}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"a training recipe's optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")

    def as_dict(self) -> dict:
        return asdict(self)


#: Local training recipes. Digits: about 4 s per model on 2 CPU cores, about 0.98 test accuracy.
#: The others imitate the model card of the Hub files they stand in for (``source="train"``):
#: CIFAR-10 (jaeunglee/resnet18-cifar10-unlearning card): 200 epochs, SGD lr 0.1 with Nesterov
#: momentum 0.9, weight decay 5e-4, batch 128, cosine schedule, random crop (pad 4) + flip.
#: Fashion-MNIST (Yurim0507/resnet18-fashionmnist-unlearning card): the same optimiser for 200
#: epochs with RandomCrop(28, padding 4) + flip and the gradient norm clipped to 0.5.
#: A model trained this way is comparable with, not identical to, the Hub file.
RECIPES: dict[str, TrainRecipe] = {
    "digits": TrainRecipe(epochs=20, lr=0.05, batch_size=64),
    "fashion_mnist": TrainRecipe(epochs=200, lr=0.1, batch_size=128, augment=True, nesterov=True, clip_grad_norm=0.5),
    "cifar10": TrainRecipe(epochs=200, lr=0.1, batch_size=128, augment=True, nesterov=True),
}

#: Recipes of the architectures that are not their data set's default (they replace
#: :data:`RECIPES`' entry for scenarios of that architecture):
#:
#: - ``fmnist_cnn``: SGD (momentum 0.9, weight decay 5e-4), lr 0.05 with a cosine schedule to 0,
#:   batch 128, 6 epochs, no augmentation. mucomp's own, measured on the real Fashion-MNIST
#:   (benchmarks/fashion_mnist.py): test accuracy 0.92 for the Original, about 1.6 minutes per
#:   model on 2 CPU cores.
#: - ``vit_digits``: AdamW (lr 5e-3, weight decay 0.05), batch 64, 30 epochs: 3 of linear warm-up,
#:   then cosine to 0; from scratch, no augmentation (a 1-pixel shift costs 20 points on 8 x 8).
#:   mucomp's own, tuned on digits: test accuracy 0.95-0.98, 17-25 s per model on 2 CPU cores
#:   (``benchmarks/references_digits.py --arch vit_digits``). Without the warm-up the same budget
#:   reaches 0.90-0.93; the weight decay is the usual ViT one (DeiT, Touvron et al., 2021: 0.05).
#: - ``vit_b16_cifar``: the model card of Yurim0507/vit-base-16-cifar10-unlearning: starting
#:   from torchvision's ImageNet weights (:data:`mucomp.models.PRETRAINED`), AdamW lr 5e-5,
#:   weight decay 0.01, cosine schedule over 10 epochs, batch 16. The card is cut off at its
#:   augmentation: random crop (pad 4) + flip is assumed, as on the same authors' ResNet cards.
ARCH_RECIPES: dict[str, TrainRecipe] = {
    "fmnist_cnn": TrainRecipe(epochs=6, lr=0.05, batch_size=128),
    "vit_digits": TrainRecipe(epochs=30, lr=5e-3, batch_size=64, weight_decay=0.05, optimizer="adamw", warmup_epochs=3),
    "vit_b16_cifar": TrainRecipe(epochs=10, lr=5e-5, batch_size=16, weight_decay=0.01, augment=True, optimizer="adamw"),
}


def recipe_for(dataset: str, arch: str | None = None) -> TrainRecipe:
    """The local training recipe of a reference (and of Retrain) of ``arch`` on ``dataset``."""
    return ARCH_RECIPES.get(arch or "", RECIPES[dataset])


#: Recipe fields added after caches existed: they enter the cache hash only when set, so a
#: recipe that does not use them keeps its cache folder (and its references their ids).
_LATER_FIELDS = {"nesterov": False, "clip_grad_norm": None, "optimizer": "sgd", "warmup_epochs": 0}


def recipe_hash(arch: str, recipe: TrainRecipe) -> str:
    fields = {k: v for k, v in recipe.as_dict().items() if not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}
    text = json.dumps({"arch": arch, "recipe": fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# How long the references take here


@dataclass(frozen=True)
class TrainingSpeed:
    """The measured cost of training one architecture on a CPU.

    ``forward_mflop``: FLOPs of one forward pass of one image, in millions (2 x multiply-adds of
    the convolutions and linear layers; ``tests/test_fashion_mnist.py`` counts them on the model).
    ``share_of_dense``: the achieved FLOP rate of preparing both references (training at 3 x
    forward per image: forward, and the backward's two products; then one evaluation pass each)
    over :func:`dense_gflops` in the same process, measured by ``benchmarks/fashion_mnist.py``.
    """

    forward_mflop: float
    share_of_dense: float


#: The architectures whose references train on a CPU in minutes, with their measured speed.
TRAINING_SPEEDS: dict[str, TrainingSpeed] = {
    # benchmarks/fashion_mnist.py, 2 cores: both references trained, evaluated and stored in 257 s
    # (training alone at 77.5 GFLOP/s) against 143 GFLOP/s of dense_gflops in the same process.
    "fmnist_cnn": TrainingSpeed(forward_mflop=8.48, share_of_dense=0.5),
}


def dense_gflops(size: int = 1024, repeats: int = 5) -> float:
    """This machine's dense float32 throughput in GFLOP/s: the best of ``repeats`` products of two
    ``size x size`` matrices with numpy's BLAS (the calibration every speed figure is a share of)."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # the BLAS's own start-up stays out of the figure
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


@functools.cache
def _dense_gflops_once() -> float:
    """:func:`dense_gflops`, measured once per process."""
    return dense_gflops()


def expected_reference_seconds(dataset: str, arch: str, n_train: int, n_retain: int, n_test: int) -> float | None:
    """Seconds to train and evaluate both references of ``arch`` on this machine, or ``None`` for
    an architecture without a measured :data:`TRAINING_SPEEDS` entry (the published ResNet-18s
    and ViT-B/16: downloaded, or hours of training on a CPU).

    ``n_train`` / ``n_retain`` / ``n_test``: images the Original and the Retrained model train on,
    and test images. Each reference trains ``epochs`` of its images (:func:`recipe_for`) and is
    evaluated once over the train and test splits; the rate is :attr:`TrainingSpeed.share_of_dense`
    of :func:`dense_gflops`, measured once per process (about 0.1 s).
    """
    speed = TRAINING_SPEEDS.get(arch)
    if speed is None:
        return None
    recipe = recipe_for(dataset, arch)
    forwards = 3 * recipe.epochs * (n_train + n_retain) + 2 * (n_train + n_test)
    return forwards * speed.forward_mflop * 1e6 / (speed.share_of_dense * _dense_gflops_once() * 1e9)
