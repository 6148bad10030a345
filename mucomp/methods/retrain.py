"""Retrain: train from scratch on the retain set, the gold standard the others imitate.

It uses the local reference recipe of the scenario's data set and architecture
(:func:`mucomp.recipes.recipe_for`: :data:`~mucomp.recipes.RECIPES`, or
:data:`~mucomp.recipes.ARCH_RECIPES` for a non-default architecture) on the shared loop:
``ctx.model`` is re-initialised in place from the same starting model as a locally trained
Retrained reference (:func:`mucomp.models.starting_model`: seeded, and for ViT-B/16 torchvision's
ImageNet weights as on the published files' card) and its batches are drawn exactly as
:func:`mucomp.training.train` draws them, so at the default hyper-parameters and the scenario's seed it reproduces a Retrained
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
from mucomp.models import channels_last, starting_model
from mucomp.recipes import ARCH_RECIPES, RECIPES, recipe_for
from mucomp.training import epoch_scheduler, iterate_batches, make_generator, recipe_optimizer


def _recipe_defaults(recipe) -> dict:
    return {"epochs": recipe.epochs, "lr": recipe.lr, "batch_size": recipe.batch_size}


@register(
    "retrain",
    defaults={**{name: _recipe_defaults(r) for name, r in RECIPES.items()},
              **{arch: _recipe_defaults(r) for arch, r in ARCH_RECIPES.items()}},
    default_sources={
        "cifar10": "mucomp.recipes.RECIPES, after the model card of jaeunglee/resnet18-cifar10-unlearning",
        "fashion_mnist": "mucomp.recipes.RECIPES, after the model card of Yurim0507/resnet18-fashionmnist-unlearning",
        "vit_b16_cifar": "mucomp.recipes.ARCH_RECIPES, after the model card of Yurim0507/vit-base-16-cifar10-unlearning",
    },
)
def retrain(ctx: UnlearnContext) -> None:
    """Train from scratch on the retain set with the data set's reference recipe."""
    spec = ctx.scenario.spec
    base = recipe_for(spec.name, ctx.scenario.arch)
    recipe = replace(base, epochs=ctx.num_epochs, lr=ctx.lr, batch_size=ctx.batch_size)
    seed = derive_seed(ctx.seed, "reference-retrained")  # the Retrained reference's seed
    with ctx.preparation():  # building (and for ViT-B/16 loading ImageNet weights) is not unlearning
        fresh = starting_model(ctx.scenario.arch, spec.num_classes, seed)
    with torch.no_grad():
        ctx.model.load_state_dict(fresh.state_dict())
    optimizer = recipe_optimizer(ctx.model, recipe)
    ctx.set_optimizer(optimizer, epoch_scheduler(optimizer, recipe.epochs, recipe.schedule, recipe.warmup_epochs))
    ctx.set_clip_grad_norm(recipe.clip_grad_norm)
    generator = make_generator(seed)  # the batch order of train(), not ctx.generator
    for _epoch in ctx.epochs():
        for images, labels in iterate_batches(
            ctx.split, ctx.retain_indices, recipe.batch_size, generator, augment=recipe.augment, device=ctx.device,
            channels_last=channels_last(ctx.model),
        ):
            ctx.step(F.cross_entropy(ctx.model(images), labels))
