"""Local training recipes of the reference models (and of Retrain), and their hash.

A recipe (:class:`mucomp.training.TrainRecipe`) is the data set's (:data:`RECIPES`) or, for an
architecture that is not its data set's default, the architecture's (:data:`ARCH_RECIPES`). Its
hash names the cache folder of the references trained with it.
"""

from __future__ import annotations

import hashlib
import json

from mucomp.training import TrainRecipe

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
