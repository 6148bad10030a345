"""Retrain: train from scratch on the retain set, the gold standard the others imitate.

It uses the local reference recipe (:data:`mucomp.references.RECIPES`) on the shared loop:
``ctx.model`` is re-initialised in place from the same seeded fresh model as a locally trained
Retrained reference and its batches are drawn exactly as :func:`mucomp.training.train` draws
them, so at the default hyper-parameters and the scenario's seed it reproduces a Retrained
reference trained by mucomp (digits, or ``--source train``) exactly. It does not reproduce a
Hub checkpoint: those were trained by their publishers with their own code, initialisation and
data order; the recipe only imitates their model card. ``epochs``, ``lr`` and ``batch_size``
override the recipe's; momentum (Nesterov or not), weight decay, schedule, augmentation and
gradient clipping stay.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from mucomp.data import derive_seed
from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import register
from mucomp.models import seeded_model
from mucomp.references import RECIPES
from mucomp.training import epoch_scheduler, iterate_batches, make_generator, recipe_optimizer


def _recipe_defaults(dataset: str) -> dict:
    recipe = RECIPES[dataset]
    return {"epochs": recipe.epochs, "lr": recipe.lr, "batch_size": recipe.batch_size}


@register(
    "retrain",
    label="Retrain",
    defaults={name: _recipe_defaults(name) for name in RECIPES},
    default_sources={
        "cifar10": "mucomp.references.RECIPES, after the model card of jaeunglee/resnet18-cifar10-unlearning",
        "fashion_mnist": "mucomp.references.RECIPES, after the model card of Yurim0507/resnet18-fashionmnist-unlearning",
    },
)
def retrain(ctx: UnlearnContext) -> None:
    """Train from scratch on the retain set with the data set's reference recipe."""
    spec = ctx.scenario.spec
    recipe = replace(RECIPES[spec.name], epochs=ctx.num_epochs, lr=ctx.lr, batch_size=ctx.batch_size)
    seed = derive_seed(ctx.seed, "reference-retrained")  # the Retrained reference's seed
    fresh = seeded_model(spec.arch, spec.num_classes, seed)
    with torch.no_grad():
        ctx.model.load_state_dict(fresh.state_dict())
    optimizer = recipe_optimizer(ctx.model, recipe)
    ctx.set_optimizer(optimizer, epoch_scheduler(optimizer, recipe.epochs, recipe.schedule))
    ctx.set_clip_grad_norm(recipe.clip_grad_norm)
    generator = make_generator(seed)  # the batch order of train(), not ctx.generator
    for _epoch in ctx.epochs():
        for images, labels in iterate_batches(
            ctx.split, ctx.retain_indices, recipe.batch_size, generator, augment=recipe.augment, device=ctx.device
        ):
            ctx.step(F.cross_entropy(ctx.model(images), labels))
