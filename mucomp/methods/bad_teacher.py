"""Bad Teacher (Chundawat et al., AAAI 2023, "Can Bad Teaching Induce Forgetting?"): the model
is a student of two teachers. On retain images it follows the competent teacher (its own
starting weights); on forget images an incompetent one (a randomly initialised model of the
same architecture). Loss: KL divergence between the student's and the chosen teacher's softmax
at temperature ``kd_T`` (``F.kl_div`` with its default elementwise mean, as published).

As in the authors' code (vikram2000b/bad-teaching-unlearning, the ``blindspot_unlearner`` of
``unlearn.py`` as run by if-loops/selective-synaptic-dampening ``forget_full_class_strategies.py``
``blindspot``): Adam at lr 1e-4, one epoch over the forget set plus a random 30 % of the retain
set shuffled together, batch 256, temperature 1. The incompetent teacher and the retain share
are drawn from the unlearning seed. ViT-B/16: batch 128, the authors' batch for their ViT ("lowered
batch size from 256 (original) to fit into memory", ``forget_full_class_strategies.py``). The
optimiser is declared (``optimizer="adam"``), not built here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mucomp.data import derive_seed
from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import Param
from mucomp.methods.registry import register
from mucomp.methods.sources import FMNIST_CNN_CHECKED, SSD_AUTHORS_VIT, VIT_DIGITS_TUNED, reused_for_fashion_mnist
from mucomp.models import seeded_model

AUTHORS = ("Bad Teacher authors: vikram2000b/bad-teaching-unlearning, as run in if-loops/selective-synaptic-dampening "
           "forget_full_class_strategies.py (KL temperature 1, Adam lr 1e-4, retain share 0.3, batch 256, 1 epoch)")
PUBLISHED = {"epochs": 1, "lr": 1e-4, "batch_size": 256, "kd_T": 1.0, "retain_share": 0.3}


def two_teacher_loss(student: torch.Tensor, competent: torch.Tensor, incompetent: torch.Tensor,
                     is_forget: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, the teacher per row: ``incompetent`` where
    ``is_forget`` (bool ``[b]``), else ``competent``. Logits ``[b, C]`` -> scalar."""
    chosen = torch.where(is_forget[:, None], incompetent, competent)
    target = F.softmax(chosen / temperature, dim=1)
    # The published elementwise mean (sum / (b * C)), written as batchmean / C: same value, and
    # without torch's warning that "mean" is not the batch mean.
    kl = F.kl_div(F.log_softmax(student / temperature, dim=1), target, reduction="batchmean")
    return kl / student.shape[1]


@register(
    "bad_teacher",
    defaults={
        "digits": {"epochs": 1, "lr": 1e-3, "batch_size": 32, "kd_T": 1.0, "retain_share": 0.3},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": PUBLISHED,
        "vit_digits": {"epochs": 2, "lr": 1e-3, "batch_size": 32, "kd_T": 1.0, "retain_share": 0.3},
        "vit_b16_cifar": {"epochs": 1, "lr": 1e-4, "batch_size": 128, "kd_T": 1.0, "retain_share": 0.3},
    },
    default_sources={"cifar10": AUTHORS, "fashion_mnist": reused_for_fashion_mnist(AUTHORS), "fmnist_cnn": f"{FMNIST_CNN_CHECKED}: {AUTHORS}",
                     "vit_b16_cifar": SSD_AUTHORS_VIT, "vit_digits": VIT_DIGITS_TUNED},
    optimizer="adam",  # the authors' torch.optim.Adam, on every architecture
    params=[
        Param("kd_T", "float", min=0.0, max=100.0, exclusive_min=True, help="temperature of the KL to the teachers"),
        Param("retain_share", "float", min=0.0, max=1.0, exclusive_min=True,
              help="share of the retain set (drawn at random) distilled from the competent teacher"),
    ],
)
def bad_teacher(ctx: UnlearnContext) -> None:
    """Distil retain images from the starting model and forget images from a random one."""
    competent = ctx.teacher()
    spec = ctx.scenario.spec
    with ctx.preparation():  # a randomly initialised model of the scenario's architecture
        incompetent = ctx.frozen(seeded_model(ctx.scenario.arch, spec.num_classes, derive_seed(ctx.seed, "bad-teacher")))
    rng = np.random.default_rng(derive_seed(ctx.seed, "bad-teacher-retain"))
    retain = ctx.retain_indices
    kept = np.sort(rng.choice(retain, int(ctx.hyper["retain_share"] * retain.size), replace=False))
    mixed = np.concatenate([ctx.forget_indices, kept])
    # The batches carry "is forget" as their label: the teachers' logits stand in for the class.
    flags = torch.cat([torch.ones(ctx.forget_indices.size), torch.zeros(kept.size)]).long()
    for _epoch in ctx.epochs():
        for images, is_forget in ctx.batches(mixed, labels=flags):
            with torch.no_grad():
                good, bad = competent(images), incompetent(images)
            loss = two_teacher_loss(ctx.model(images), good, bad, is_forget.bool(), ctx.hyper["kd_T"])
            ctx.step(loss)
